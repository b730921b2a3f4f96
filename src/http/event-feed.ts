import type { FastifyReply } from 'fastify'
import { canReach } from '../store/conversation-rules.js'
import type { FeedEvent, Following } from '../store/events.js'
import type { Reach } from '../store/types.js'

/** How many live events may wait for one follower, beyond a replay of what is kept, before it counts as one that cannot keep up. */
export const MAX_PENDING_EVENTS = 1000

/**
 * Writes one follower's events to its response as server-sent events, in order, one at a
 * time (each write waits for the socket to drain). A follower with more waiting than a
 * replay of everything kept (EVENTS_RETAINED) and MAX_PENDING_EVENTS more is disconnected,
 * so memory stays bounded: it resumes from the last id it got.
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
  #writing = false
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
    if (this.#ended) {
      following.close()
      this.#reply.sse.close()
      return
    }
    this.#write().catch(() => {})
  }

  push (event: FeedEvent | null): void {
    if (this.#ended) return
    if (event === null || this.#queue.length >= this.#maxPending) return this.end()
    if (!this.#inReach(event)) return this.#userFeed ? undefined : this.end()
    this.#queue.push(event)
    if (this.#following !== undefined) this.#write().catch(() => {})
  }

  end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#queue.length = 0
    this.#following?.close()
    if (this.#following !== undefined) this.#reply.sse.close()
    this.#onEnd()
  }

  async #write (): Promise<void> {
    if (this.#writing) return
    this.#writing = true
    try {
      for (let event = this.#queue.shift(); event !== undefined && !this.#ended; event = this.#queue.shift()) {
        await this.#reply.sse.send({ id: event.id, event: event.type, data: event.data })
        if (event.type === 'conversation.deleted' && !this.#userFeed) this.end()
      }
    } catch {
      // The follower went away while it was written to.
      this.end()
    } finally {
      this.#writing = false
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
    const { tenantId } = JSON.parse(event.data) as { tenantId: string }
    return this.#reach.tenants === '*' || this.#reach.tenants.has(tenantId)
  }
}
