import type { FastifyReply } from 'fastify'
import { canReach, canReachTenant } from '../store/conversation-rules.js'
import type { FeedEvent, Following } from '../store/events.js'
import type { Reach } from '../store/types.js'

/** How many live events may wait for one follower, beyond a replay of what is kept, before it counts as one that cannot keep up. */
export const MAX_PENDING_EVENTS = 1000

/** At most this many events go out in one turn, before the socket may ask to wait. */
const MAX_BATCH = 256

// One event goes to every follower of its feed: its frame is encoded once per turn of the
// event loop, and each follower's socket gets the same bytes. The frames are forgotten at
// the end of the turn, so that events kept for later followers do not keep them too.
const frames = new Map<FeedEvent, Buffer>()

/** An event as the SSE wire carries it (id, event, data lines), encoded once per event. */
function frameOf (event: FeedEvent): Buffer {
  let frame = frames.get(event)
  if (frame === undefined) {
    // The data is JSON, one line; a line break (none is expected) would start another data line, as the format says.
    const data = event.data.includes('\n') ? event.data.split('\n').join('\ndata: ') : event.data
    frame = Buffer.from(`id: ${event.id}\nevent: ${event.type}\ndata: ${data}\n\n`)
    frames.set(event, frame)
  }
  return frame
}

// Writers with events waiting are flushed together once the current turn of the event loop
// is done, so that the events that arrived in it leave in one write per follower.
const waiting = new Set<EventFeedWriter>()

function flushSoon (writer: EventFeedWriter): void {
  if (waiting.size === 0) setImmediate(flushWaiting)
  waiting.add(writer)
}

function flushWaiting (): void {
  const writers = [...waiting]
  waiting.clear()
  for (const writer of writers) writer.flush()
  frames.clear()
}

/**
 * Writes one follower's events to its response as server-sent events, in order. @fastify/sse
 * runs the stream (its head, heartbeats and close); the events that wait go out together,
 * and a socket that does not drain gets nothing more until it does. A follower with more
 * waiting than a replay of everything kept (EVENTS_RETAINED) and MAX_PENDING_EVENTS more is
 * disconnected, so memory stays bounded: it resumes from the last id it got.
 * A conversation's stream ends after conversation.deleted, or when a conversation.updated
 * takes the conversation out of the caller's reach; any stream ends when the store cannot
 * go on, or on end().
 */
export class EventFeedWriter {
  readonly #reply: FastifyReply
  readonly #reach: Reach
  readonly #queue: FeedEvent[] = []
  readonly #onEnd: () => void
  readonly #maxPending: number
  #following: Following | undefined
  #draining = false
  #ended = false

  readonly #userFeed: boolean

  /** `userFeed`: a user's feed, which goes on past a conversation.deleted and leaves out the events out of reach. */
  constructor (reply: FastifyReply, reach: Reach, eventsRetained: number, onEnd: () => void, userFeed = false) {
    this.#reply = reply
    this.#reach = reach
    this.#userFeed = userFeed
    this.#maxPending = eventsRetained + MAX_PENDING_EVENTS
    this.#onEnd = onEnd
  }

  /**
   * Starts the stream once the store follows the conversation; events that came first are in
   * the queue. A feed that ended meanwhile still answers its head, then ends at once.
   */
  start (following: Following): void {
    this.#following = following
    this.#reply.sse.keepAlive()
    this.#reply.sse.onClose(() => { this.end() })
    this.#reply.sse.sendHeaders()
    // Node sends a head with the first write; a follower waits for none, however quiet the conversation.
    this.#reply.raw.flushHeaders()
    // A follower that left while the store set the feed up: its close came before onClose was listened to.
    if (this.#reply.raw.destroyed) this.end()
    if (this.#ended) {
      following.close()
      this.#reply.sse.close()
      return
    }
    flushSoon(this)
  }

  push (event: FeedEvent | null): void {
    if (this.#ended) return
    if (event === null || this.#queue.length >= this.#maxPending) return this.end()
    if (!this.#inReach(event)) return this.#userFeed ? undefined : this.end()
    this.#queue.push(event)
    if (this.#following !== undefined && !this.#draining) flushSoon(this)
  }

  end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#queue.length = 0
    this.#following?.close()
    if (this.#following !== undefined) this.#reply.sse.close()
    this.#onEnd()
  }

  /** Writes what waits, in writes of at most MAX_BATCH events, until the socket asks to wait for a drain. */
  flush (): void {
    const raw = this.#reply.raw
    // A socket that is gone never drains: the stream ends rather than wait for it.
    if (raw.destroyed || raw.writableEnded) return this.end()
    while (this.#queue.length > 0 && !this.#ended && !this.#draining) {
      const batch = this.#queue.splice(0, MAX_BATCH)
      const last = this.#userFeed ? -1 : batch.findIndex((event) => event.type === 'conversation.deleted')
      const sent = last === -1 ? batch : batch.slice(0, last + 1)
      // Node corks a response's socket for the rest of the turn: these writes leave in one writev, without a copy.
      let drained = true
      for (const event of sent) drained = raw.write(frameOf(event))
      if (last !== -1) return this.end()
      if (!drained) {
        this.#draining = true
        raw.once('drain', () => {
          this.#draining = false
          flushSoon(this)
        })
      }
    }
  }

  /**
   * A caller never receives an event about a conversation out of its reach: on a
   * conversation's feed a move out of it ends the stream; a user's feed leaves it out.
   */
  #inReach (event: FeedEvent): boolean {
    if (this.#reach.tenants === '*' && this.#reach.userId === undefined) return true
    if (event.type === 'conversation.updated' || event.type === 'conversation.created') {
      const { conversation } = JSON.parse(event.data) as { conversation: { userId: string, tenantId: string } }
      return canReach(this.#reach, conversation)
    }
    if (event.type !== 'conversation.deleted' || !this.#userFeed) return true
    return canReachTenant(this.#reach, (JSON.parse(event.data) as { tenantId: string }).tenantId)
  }
}
