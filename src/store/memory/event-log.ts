import { eventData, positionOf, resetEvent, seqOf, userResetEvent, userSeqOf, type FeedEvent } from '../events.js'

type Listener = (event: FeedEvent) => void

/** How a log reads a position and tells a follower it asked for one older than what is kept. */
interface Positions {
  /** The seq of a position; null when it names an earlier epoch of the log. */
  seqOf: (position: string, incarnation: string, last: number) => number | null
  reset: (last: number, version: number) => FeedEvent
}

/**
 * The events of one incarnation of a memory conversation (or of a user's feed): the newest
 * `retained`, and the followers waiting for the next. JavaScript runs each store operation
 * to completion, so an event is recorded and delivered in the same step as its change.
 */
export class MemoryEventLog {
  readonly #conversationId: string
  readonly #incarnation: string
  readonly #retained: number
  readonly #positions: Positions
  readonly #events: FeedEvent[] = []
  readonly #listeners = new Set<Listener>()
  #last = 0

  constructor (conversationId: string, incarnation: string, retained: number, positions?: Positions) {
    this.#conversationId = conversationId
    this.#incarnation = incarnation
    this.#retained = retained
    this.#positions = positions ?? { seqOf, reset: (last, version) => resetEvent(conversationId, incarnation, last, version) }
  }

  /** A user's feed: its events name each its own conversation, and a position of an earlier epoch gets a reset. */
  static forUser (userId: string, epoch: string, retained: number): MemoryEventLog {
    return new MemoryEventLog(userId, epoch, retained, { seqOf: userSeqOf, reset: (last) => userResetEvent(userId, epoch, last) })
  }

  /** Whether no follower waits for its next event. */
  get unfollowed (): boolean { return this.#listeners.size === 0 }

  /** The position of the newest event: the Last-Event-ID of an answer. */
  get position (): string { return positionOf(this.#incarnation, this.#last) }

  emit (type: FeedEvent['type'], version: number, fields: string, conversationId = this.#conversationId): void {
    const event = { id: positionOf(this.#incarnation, ++this.#last), type, data: eventData(type, conversationId, version, fields) }
    this.#events.push(event)
    if (this.#events.length > this.#retained) this.#events.shift()
    for (const listener of this.#listeners) listener(event)
  }

  /**
   * Sends the kept events after `after` (none without it; a `reset` when it is older than
   * what is kept) and then every new one, until close() is called.
   */
  follow (after: string | undefined, version: number, listener: Listener): () => void {
    if (after !== undefined) {
      const seq = this.#positions.seqOf(after, this.#incarnation, this.#last)
      const first = this.#last - this.#events.length + 1
      if (seq === null || seq < first - 1) listener(this.#positions.reset(this.#last, version))
      else for (const event of this.#events.slice(seq - first + 1)) listener(event)
    }
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}
