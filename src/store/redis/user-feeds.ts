import type { Cluster, Redis } from 'ioredis'
import { eventData, positionOf, userResetEvent, userSeqOf, NO_USER_FEED, type FeedEvent, type Following, type UserEventType } from '../events.js'
import { conversationFields, RedisEventHub, type FeedKind } from './event-hub.js'
import { runScript } from './commands.js'
import { userFeedKey, userIndexKey } from './keys.js'

/**
 * An event of a user's feed, as the step that moves the conversation's index entry writes
 * it (lua/lib/user-feed.lua): its type, the conversation's version, and its fields, either
 * JSON or the stored record of the conversation (`{"record":[…]}`) that lib/events.lua's
 * conversationData answers.
 */
export interface UserFeedEvent { type: UserEventType, version: number | string, data: string }

export function conversationUpdated (version: number, record: string): UserFeedEvent {
  return { type: 'conversation.updated', version, data: record }
}

/** The ARGV that adds the event to a touch-index.lua call (none without one). */
export function userEventArgs (event: UserFeedEvent | undefined): Array<string | number> {
  return event === undefined ? [] : [event.type, event.version, event.data]
}

/** A user's feed: each entry names its conversation (`c`) before the type's fields. */
const userFeeds = (keyPrefix: string): FeedKind => ({
  hash: (userId) => userFeedKey(keyPrefix, userId),
  decode: (_userId, incarnation, seq, type, version, data) => {
    const { c: conversationId, record, ...fields } = JSON.parse(data) as { c: string, record?: string[] }
    const text = record === undefined ? JSON.stringify(fields) : conversationFields(conversationId, record)
    return { id: positionOf(incarnation, seq), type: type as FeedEvent['type'], data: eventData(type, conversationId, version, text) }
  },
  reset: (userId, incarnation, last) => userResetEvent(userId, incarnation, last),
  startsOver: true
})

export interface RedisUserFeedsOptions {
  client: Redis | Cluster
  keyPrefix: string
  guard: <T>(operation: () => Promise<T>) => Promise<T>
  onError: (error: unknown) => void
}

/** The users' feeds of a Redis store: their positions, and their followers here (one hub, one subscriber). */
export class RedisUserFeeds {
  readonly #options: RedisUserFeedsOptions
  readonly #hub: RedisEventHub

  constructor (options: RedisUserFeedsOptions) {
    this.#options = options
    this.#hub = new RedisEventHub({ client: options.client, kind: userFeeds(options.keyPrefix), guard: options.guard, onError: options.onError })
  }

  /** The position of the newest event of the user's feed: the Last-Event-ID of a list (read before the list, so it misses nothing). */
  async position (userId: string): Promise<string> {
    const [epoch, last] = await this.#options.client.hmget(userFeedKey(this.#options.keyPrefix, userId), 'inc', 'ev')
    return epoch === null || epoch === undefined ? NO_USER_FEED : positionOf(epoch, Number(last ?? 0))
  }

  /** Follows the user's feed, started here if it has none yet, so that its followers know its epoch. */
  async follow (userId: string, after: string | undefined, listener: (event: FeedEvent) => void, onFailure: () => void): Promise<Following> {
    const { client, keyPrefix, guard } = this.#options
    const [epoch, last] = await guard(async () =>
      await runScript(client, 'csStartUserFeed', [userIndexKey(keyPrefix, userId)])) as unknown as [string, number]
    const seq = after === undefined ? null : userSeqOf(after, epoch, Number(last))
    // A position of an earlier epoch: a reset first, then the whole of this one.
    if (after !== undefined && seq === null) listener(userResetEvent(userId, epoch, 0))
    const from = after === undefined ? undefined : positionOf(epoch, seq ?? 0)
    return await this.#hub.follow(userId, from, { incarnation: epoch, last: Number(last), version: 0 }, listener, onFailure)
  }

  async close (): Promise<void> {
    await this.#hub.close()
  }
}
