import { Cluster, type Redis } from 'ioredis'
import { eventData, eventFields, positionOf, resetEvent, seqOf, type FeedEvent, type Following } from '../events.js'
import { toSummary } from '../conversation-rules.js'
import { parseConversation, parseWorkflowState, type RawConversation } from './records.js'
import { conversationKeys } from './keys.js'

/**
 * What a hub follows: conversations' feeds (lua/lib/events.lua) or users' feeds
 * (lua/lib/user-feed.lua). Both keep a hash with the feed's incarnation and event count,
 * a log per incarnation at `<hash>:events:<incarnation>`, and a shard channel `<hash>:live`.
 */
export interface FeedKind {
  /** The feed's hash, for an id (a conversation's or a user's). */
  hash: (id: string) => string
  /** An event as followers get it, from what the script wrote. */
  decode: (id: string, incarnation: string, seq: number, type: string, version: string, data: string) => FeedEvent
  /** For a position older than what is kept; `version` is the hash's. */
  reset: (id: string, incarnation: string, last: number, version: number) => FeedEvent
  /** Whether a follower of an earlier incarnation goes on with the new one, after a reset (a user's feed that started over). */
  startsOver: boolean
}

/** A conversation's feed. */
export const conversationFeeds = (keyPrefix: string): FeedKind => ({
  hash: (id) => conversationKeys(keyPrefix, id).doc,
  decode: (id, incarnation, seq, type, version, data) =>
    ({ id: positionOf(incarnation, seq), type: type as FeedEvent['type'], data: eventData(type, id, version, fieldsOf(id, type, data)) }),
  reset: resetEvent,
  startsOver: false
})

export interface RedisEventHubOptions {
  client: Redis | Cluster
  kind: FeedKind
  /** Bounds an operation in time and turns Redis failures into 503s. */
  guard: <T>(operation: () => Promise<T>) => Promise<T>
  onError: (error: unknown) => void
}

/** Where a conversation's feed stands now, read when a follower arrives. */
export interface FeedStart { incarnation: string, last: number, version: number }

type Listener = (event: FeedEvent) => void

/** One follower: the last seq it was given, and whether it is catching up from the log. */
interface Follower {
  id: string
  incarnation: string
  last: number
  listener: Listener
  filling: boolean
  /** Something was published while it caught up: it catches up once more. */
  again: boolean
  closed: boolean
  onFailure: () => void
}

/** The followers of one conversation here, and its channel's subscription. */
interface Channel { followers: Set<Follower>, subscribed: Promise<unknown> }

/**
 * Followers of Redis conversations. Each event is written by the script of its change to
 * the conversation's log and published on its shard channel (lua/lib/events.lua). One
 * subscriber connection (on a cluster, one per primary: ioredis' sharded subscribers)
 * serves every follower of this instance, whatever their number: a channel is subscribed
 * while a follower of its conversation is here. A follower gets each published event whose
 * seq follows the last it got; any gap (a lost message, a reconnection, a follower that
 * arrives) is filled from the log with XRANGE, so nothing is lost or given twice.
 */
export class RedisEventHub {
  readonly #options: RedisEventHubOptions
  readonly #channels = new Map<string, Channel>()
  #subscriber: Redis | Cluster | undefined

  constructor (options: RedisEventHubOptions) {
    this.#options = options
  }

  /** Adds a follower from `after` (else from the next event), given where the feed stands now. */
  async follow (id: string, after: string | undefined, start: FeedStart, listener: Listener, onFailure: () => void): Promise<Following> {
    const last = after === undefined ? start.last : seqOf(after, start.incarnation, start.last)
    const follower: Follower = { id, incarnation: start.incarnation, last, listener, filling: false, again: false, closed: false, onFailure }
    let channel = this.#channels.get(id)
    if (channel === undefined) {
      const name = this.#channel(id)
      channel = { followers: new Set(), subscribed: this.#options.guard(async () => await this.#connection().ssubscribe(name)) }
      this.#channels.set(id, channel)
    }
    channel.followers.add(follower)
    try {
      await channel.subscribed
    } catch (error) {
      this.#leave(follower)
      throw error
    }
    // Subscribed first, then the log: what is published meanwhile is in one or the other.
    this.#catchUp(follower)
    return { close: () => { this.#leave(follower) } }
  }

  async close (): Promise<void> {
    this.#channels.clear()
    this.#subscriber?.disconnect()
  }

  #leave (follower: Follower): void {
    follower.closed = true
    const channel = this.#channels.get(follower.id)
    if (channel === undefined || !channel.followers.delete(follower) || channel.followers.size > 0) return
    this.#channels.delete(follower.id)
    this.#subscriber?.sunsubscribe(this.#channel(follower.id)).catch(() => {})
  }

  #connection (): Redis | Cluster {
    if (this.#subscriber !== undefined) return this.#subscriber
    const { client } = this.#options
    const subscriber = client instanceof Cluster ? client.duplicate([], { shardedSubscribers: true }) : client.duplicate()
    subscriber.on('smessage', (channel: string, message: string) => { this.#published(channel, message) })
    // Back after a disconnection: what was published meanwhile is in the logs.
    const refill = (): void => { for (const { followers } of this.#channels.values()) for (const follower of followers) this.#catchUp(follower) }
    subscriber.on('ready', refill)
    subscriber.on('subscribersReady', refill)
    subscriber.on('error', () => {})
    this.#subscriber = subscriber
    return subscriber
  }

  #published (channel: string, message: string): void {
    const id = channel.slice(channel.indexOf('{') + 1, channel.lastIndexOf('}'))
    const followers = this.#channels.get(id)?.followers
    if (followers === undefined) return
    const [incarnation, seqText, type, version] = message.split('\n', 4) as [string, string, string, string]
    const seq = Number(seqText)
    let event: FeedEvent | undefined
    for (const follower of followers) {
      if (follower.incarnation !== incarnation && this.#options.kind.startsOver) this.#startOver(follower, incarnation, seq)
      if (follower.incarnation !== incarnation || seq <= follower.last) continue
      if (follower.filling || seq > follower.last + 1) {
        this.#catchUp(follower)
        continue
      }
      event ??= this.#options.kind.decode(id, incarnation, seq, type, version, message.slice(incarnation.length + seqText.length + type.length + version.length + 4))
      follower.last = seq
      follower.listener(event)
    }
  }

  /** A user's feed that expired and started over: its follower gets a reset, then goes on from the new feed's start. */
  #startOver (follower: Follower, incarnation: string, seq: number): void {
    follower.incarnation = incarnation
    follower.last = 0
    follower.listener(this.#options.kind.reset(follower.id, incarnation, 0, 0))
    if (seq > 1) this.#catchUp(follower)
  }

  /** Gives a follower what the log holds after its last seq, again until it has all it was told of. */
  #catchUp (follower: Follower): void {
    if (follower.filling) {
      follower.again = true
      return
    }
    follower.filling = true
    follower.again = false
    this.#fill(follower).then(() => {
      follower.filling = false
      if (follower.again && !follower.closed) this.#catchUp(follower)
    }, (error: unknown) => {
      this.#options.onError(error)
      this.#leave(follower)
      follower.onFailure()
    })
  }

  async #fill (follower: Follower): Promise<void> {
    const { client, kind, guard } = this.#options
    const hash = kind.hash(follower.id)
    const log = `${hash}:events:${follower.incarnation}`
    for (;;) {
      const entries = await guard(async () => await client.xrange(log, `${follower.last + 1}-0`, '+', 'COUNT', 500))
      if (follower.closed) return
      const first = entries[0]
      if (first !== undefined && Number(first[0].split('-')[0]) > follower.last + 1) {
        // Older than what is kept: one reset, then on from the newest event.
        const [ev, version] = await guard(async () => await client.hmget(hash, 'ev', 'version'))
        const newest = Number(entries.at(-1)?.[0].split('-')[0])
        follower.last = Math.max(newest, Number(ev ?? 0))
        follower.listener(kind.reset(follower.id, follower.incarnation, follower.last, Number(version ?? 0)))
        continue
      }
      for (const [entryId, fields] of entries) {
        const seq = Number(entryId.split('-')[0])
        if (seq <= follower.last) continue
        follower.last = seq
        follower.listener(kind.decode(follower.id, follower.incarnation, seq, fields[1] as string, fields[3] as string, fields[5] as string))
        if (follower.closed) return
      }
      if (entries.length < 500) return
    }
  }

  #channel (id: string): string {
    return `${this.#options.kind.hash(id)}:live`
  }
}

/** The fields of an event as the scripts wrote them; a record is validated and serialised as reads do. */
export function fieldsOf (id: string, type: string, data: string): string {
  if (type === 'conversation.updated') return conversationFields(id, (JSON.parse(data) as { record: string[] }).record)
  if (type === 'workflow_state.updated') {
    const [body, version, updatedAt, expiresAt] = (JSON.parse(data) as { record: string[] }).record as [string, string, string, string]
    return eventFields.workflowState(parseWorkflowState(id, body, Number(version), Number(updatedAt), Number(expiresAt)))
  }
  return data
}

/** The fields of a conversation event from the stored record (lib/events.lua's conversationData): the conversation without its messages. */
export function conversationFields (id: string, record: string[]): string {
  const [body, userId, createdAt, updatedAt, expiresAt, version, count, incarnation] = record
  const raw = [body, userId, createdAt, updatedAt, expiresAt, version, count, '', incarnation, ''] as RawConversation
  return eventFields.conversation(toSummary(parseConversation(id, raw, 'none').conversation))
}
