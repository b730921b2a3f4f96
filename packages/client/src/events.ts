import { setTimeout as sleep } from 'node:timers/promises'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { FeedEventDataSchema, type FeedEventData, type FeedEventType } from '../../../src/event-schemas.js'
import { backoff, ConversationStoreError, parse, parseJson } from './client-answers.js'

// events(): a conversation's feed (GET /v1/conversations/:id/events) as an async iterator of
// typed events. One stream at a time, read with eventsource-parser; the data of each event
// is parsed with the service's own schemas (src/event-schemas.ts). When a stream ends or
// breaks, the next one opens from the id of the last event yielded (Last-Event-ID) after
// the client's backoff, so the caller gets each event once and in order. The iteration ends
// after conversation.deleted, when the signal aborts, or when the caller stops iterating.

/** One event: its position (`id`, opaque: pass it back as `after`), its type, and its data, typed by the type. */
export type ConversationEvent = {
  [T in FeedEventType]: { id: string, type: T, data: Extract<FeedEventData, { type: T }> }
}[FeedEventType]

export interface EventsOptions {
  /**
   * Where to go on from: the `lastEventId` of an answer, or the `id` of an event received.
   * Without it, from the conversation as it is when the iteration starts.
   */
  after?: string | undefined
  /** Aborting ends the iteration, without an error, and closes the stream. */
  signal?: AbortSignal | undefined
}

/** The requests of one follower, bound to its conversation by client.ts. Each is one try. */
export interface FeedCalls {
  /** The position of the conversation's newest event, from a read (undefined when the answer names none). */
  position: (signal: AbortSignal) => Promise<string | undefined>
  open: (after: string | undefined, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>
  /** The longest wait between tries. */
  maxDelayMs: number
}

export async function * followEvents (calls: FeedCalls, options: EventsOptions = {}): AsyncGenerator<ConversationEvent, void, undefined> {
  const { signal } = options
  if (signal?.aborted === true) return
  // Aborted by the caller's signal, or when the iteration ends for any reason: the fetch, the read and any wait stop.
  const stop = new AbortController()
  const onAbort = (): void => { stop.abort(signal?.reason) }
  signal?.addEventListener('abort', onAbort, { once: true })
  const pacer = new Pacer(calls.maxDelayMs, stop.signal)
  try {
    // Without a position, the feed would start wherever a reconnect happens to: a read pins "now" first.
    let after = options.after ?? await pacer.retry(async () => await calls.position(stop.signal))
    for (;;) {
      const stream = new EventStream(await pacer.retry(async () => await calls.open(after, stop.signal)))
      for await (const event of stream.events()) {
        after = event.id
        yield event
        if (event.type === 'conversation.deleted') return
      }
      // The service ended the stream (a shutdown, a store failure, a follower too slow) or the
      // connection broke. One that carried anything (an event, a heartbeat) was a good one.
      if (stream.alive) pacer.succeeded()
      await pacer.wait()
    }
  } catch (error) {
    // An abort shows as whatever the pending fetch, read or wait rejected with.
    if (stop.signal.aborted) return
    throw error
  } finally {
    signal?.removeEventListener('abort', onAbort)
    stop.abort()
  }
}

/** The waits between tries: the client's backoff, or a 503's Retry-After, never more than maxDelayMs. */
class Pacer {
  #failures = 0
  readonly #maxDelayMs: number
  readonly #signal: AbortSignal

  constructor (maxDelayMs: number, signal: AbortSignal) {
    this.#maxDelayMs = maxDelayMs
    this.#signal = signal
  }

  succeeded (): void {
    this.#failures = 0
  }

  async wait (retryAfterMs?: number): Promise<void> {
    this.#failures++
    await sleep(Math.min(retryAfterMs ?? backoff(this.#failures), this.#maxDelayMs), undefined, { signal: this.#signal })
  }

  /** Tries until it works: again after a network error or a 503, until aborted. Any other error is thrown (a 4xx, a 500, an answer off the contract). */
  async retry<T> (call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await call()
      } catch (error) {
        if (this.#signal.aborted || !(error instanceof ConversationStoreError)) throw error
        if (error.code === 'NETWORK_ERROR') await this.wait()
        else if (error.statusCode === 503) await this.wait(error.retryAfterSeconds === undefined ? undefined : error.retryAfterSeconds * 1000)
        else throw error
      }
    }
  }
}

/** One open stream: its events as they arrive, and whether it carried anything at all. */
class EventStream {
  alive = false
  readonly #body: ReadableStream<Uint8Array>

  constructor (body: ReadableStream<Uint8Array>) {
    this.#body = body
  }

  /** Ends when the stream ends or breaks; the parser drops an event cut off in the middle. */
  async * events (): AsyncGenerator<ConversationEvent, void, undefined> {
    const arrived: EventSourceMessage[] = []
    const parser = createParser({
      onEvent: (message) => { arrived.push(message) },
      // Heartbeats.
      onComment: () => { this.alive = true }
    })
    const reader = this.#body.getReader()
    const decoder = new TextDecoder()
    try {
      for (let chunk = await nextChunk(reader); chunk !== undefined; chunk = await nextChunk(reader)) {
        parser.feed(decoder.decode(chunk, { stream: true }))
        for (let message = arrived.shift(); message !== undefined; message = arrived.shift()) {
          this.alive = true
          yield toEvent(message)
        }
      }
    } finally {
      // Closes the connection when the caller stops early; a no-op once the stream has ended.
      reader.cancel().catch(() => {})
    }
  }
}

/** The next chunk, or undefined when the stream has ended or broken (either way, the follower reconnects). */
async function nextChunk (reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | undefined> {
  try {
    const { done, value } = await reader.read()
    return done ? undefined : value
  } catch {
    return undefined
  }
}

/** An event as the caller gets it: its data parsed with the service's schemas, its id and type checked. */
function toEvent (message: EventSourceMessage): ConversationEvent {
  const data = parse(FeedEventDataSchema, parseJson(message.data))
  if (message.id === undefined || message.id === '' || message.event !== data.type) {
    throw new ConversationStoreError(`The service sent an event without an id, or of a type (${String(message.event)}) other than its data's (${data.type})`, { code: 'INVALID_RESPONSE' })
  }
  // The cast only restates what the schema has just checked: the data is of the event's type.
  return { id: message.id, type: data.type, data } as ConversationEvent
}
