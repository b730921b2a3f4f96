import type { Cluster, Redis } from 'ioredis'
import { eventData, positionOf, userResetEvent, userSeqOf, NO_USER_FEED, type FeedEvent, type Following, type UserEventType } from '../events.js'
import { conversationFeeds, conversationFields, RedisEventHub, type FeedKind } from './event-hub.js'
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

export interface RedisFeedsOptions {
  client: Redis | Cluster
  keyPrefix: string
  guard: <T>(operation: () => Promise<T>) => Promise<T>
  onError: (error: unknown) => void
}

/**
 * The feeds of a Redis store: conversations' and users' (a hub each, so two subscriber
 * connections per instance whatever the number of followers), and the users' positions.
 */
export class RedisFeeds {
  readonly #options: RedisFeedsOptions
  readonly #conversations: RedisEventHub
  readonly #users: RedisEventHub

  constructor (options: RedisFeedsOptions) {
    this.#options = options
    const { client, keyPrefix, guard, onError } = options
    this.#conversations = new RedisEventHub({ client, kind: conversationFeeds(keyPrefix), guard, onError })
    this.#users = new RedisEventHub({ client, kind: userFeeds(keyPrefix), guard, onError })
  }

  /** Follows a conversation's feed from where a read of it (`view`) says it stands. */
  async followConversation (view: { id: string, etag: string, position: string, version: number }, after: string | undefined, listener: (event: FeedEvent) => void, onFailure: () => void): Promise<Following> {
    const start = { incarnation: view.etag.slice(0, view.etag.lastIndexOf('.')), last: Number(view.position.slice(view.position.lastIndexOf('-') + 1)), version: view.version }
    return await this.#conversations.follow(view.id, after, start, listener, onFailure)
  }

  /** The position of the newest event of the user's feed: the Last-Event-ID of a list (read before the list, so it misses nothing). */
  async position (userId: string): Promise<string> {
    const [epoch, last] = await this.#options.client.hmget(userFeedKey(this.#options.keyPrefix, userId), 'inc', 'ev')
    return epoch === null || epoch === undefined ? NO_USER_FEED : positionOf(epoch, Number(last ?? 0))
  }

  /** Follows the user's feed, started here if it has none yet, so that its followers know its epoch. */
  async followUser (userId: string, after: string | undefined, listener: (event: FeedEvent) => void, onFailure: () => void): Promise<Following> {
    const { client, keyPrefix, guard } = this.#options
    const [epoch, last] = await guard(async () =>
      await runScript(client, 'csStartUserFeed', [userIndexKey(keyPrefix, userId)])) as unknown as [string, number]
    const seq = after === undefined ? null : userSeqOf(after, epoch, Number(last))
    // A position of an earlier epoch: a reset first, then the whole of this one.
    if (after !== undefined && seq === null) listener(userResetEvent(userId, epoch, 0))
    const from = after === undefined ? undefined : positionOf(epoch, seq ?? 0)
    return await this.#users.follow(userId, from, { incarnation: epoch, last: Number(last), version: 0 }, listener, onFailure)
  }

  async close (): Promise<void> {
    await this.#conversations.close()
    await this.#users.close()
  }
}

/** Adds, moves or removes a user's index entry (touch-index.lua); with an event, the user's feed gets it in the same step. */
export async function touchIndex (
  client: Redis | Cluster, keyPrefix: string, mode: 'NX' | 'GT' | 'REM', userId: string, id: string, score: number | string, expiresAt: number | '', event?: UserFeedEvent
): Promise<void> {
  await runScript(client, 'csTouchIndex', [userIndexKey(keyPrefix, userId)], mode, score, id, expiresAt, ...userEventArgs(event))
}
