import { eventData, positionOf, resetEvent, seqOf, type EventType, type FeedEvent } from '../events.js'

type Listener = (event: FeedEvent) => void

/**
 * The events of one incarnation of a memory conversation: the newest `retained`, and the
 * followers waiting for the next. JavaScript runs each store operation to completion, so
 * an event is recorded and delivered in the same step as its change.
 */
export class MemoryEventLog {
  readonly #conversationId: string
  readonly #incarnation: string
  readonly #retained: number
  readonly #events: FeedEvent[] = []
  readonly #listeners = new Set<Listener>()
  #last = 0

  constructor (conversationId: string, incarnation: string, retained: number) {
    this.#conversationId = conversationId
    this.#incarnation = incarnation
    this.#retained = retained
  }

  /** The position of the newest event: the Last-Event-ID of an answer. */
  get position (): string { return positionOf(this.#incarnation, this.#last) }

  emit (type: EventType, version: number, fields: string): void {
    const event = { id: positionOf(this.#incarnation, ++this.#last), type, data: eventData(type, this.#conversationId, version, fields) }
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
      const seq = seqOf(after, this.#incarnation, this.#last)
      const first = this.#last - this.#events.length + 1
      if (seq < first - 1) listener(resetEvent(this.#conversationId, this.#incarnation, this.#last, version))
      else for (const event of this.#events.slice(seq - first + 1)) listener(event)
    }
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}
