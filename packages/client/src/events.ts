import { setTimeout as sleep } from 'node:timers/promises'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import type { z } from 'zod'
import { FeedEventDataSchema, UserFeedEventDataSchema, type FeedEventData, type UserFeedEventData } from '../../../src/event-schemas.js'
import { backoff, ConversationStoreError, lastEventIdOf, parse, parseJson } from './client-answers.js'
import type { Transport } from './client-transport.js'

// events() and userEvents(): a conversation's feed (GET /v1/conversations/:id/events) or a
// user's (GET /v1/users/:userId/events) as an async iterator of typed events. One stream at
// a time, read with eventsource-parser; the data of each event is parsed with the service's
// own schemas (src/event-schemas.ts). When a stream ends or breaks, the next one opens from
// the id of the last event yielded (Last-Event-ID) after the client's backoff, so the caller
// gets each event once and in order. The iteration ends after the feed's last event (a
// conversation's conversation.deleted; a user's feed has none), when the signal aborts, or
// when the caller stops iterating.

/** The data of a feed's events: a discriminated union on `type`. */
interface TypedData { type: string }

/** One event of a feed whose data is D: its position (`id`, opaque: pass it back as `after`), its type, and its data, typed by the type. */
export type FeedItem<D extends TypedData> = {
  [T in D['type']]: { id: string, type: T, data: Extract<D, { type: T }> }
}[D['type']]

/** An event of a conversation's feed. */
export type ConversationEvent = FeedItem<FeedEventData>
/** An event of a user's feed: a conversation of the user created, updated or deleted, or a reset. */
export type UserEvent = FeedItem<UserFeedEventData>

export interface EventsOptions {
  /**
   * Where to go on from: the `lastEventId` of an answer, or the `id` of an event received.
   * Without it, from now: the conversation (or the user's list) as it is when the iteration starts.
   */
  after?: string | undefined
  /** Aborting ends the iteration, without an error, and closes the stream. */
  signal?: AbortSignal | undefined
}

/** What sets the feeds apart. */
interface Feed<D extends TypedData> {
  /** The path of the stream. */
  path: string
  /** A GET whose Last-Event-ID is the position of the feed's newest event: "now". */
  read: { path: string, query: URLSearchParams }
  /** The schema of the events' data. */
  schema: z.ZodType<D>
  /** The type after which the service ends the stream, if any. */
  last?: D['type']
}

/** The feed of the conversation at `path` (/v1/conversations/:id). */
export const conversationFeed = (path: string): Feed<FeedEventData> => ({
  path: `${path}/events`,
  read: { path, query: new URLSearchParams({ view: 'summary' }) },
  schema: FeedEventDataSchema,
  last: 'conversation.deleted'
})

/** The feed of the user at `path` (/v1/users/:userId); it goes on past a deletion, as the user's other conversations still change. */
export const userFeed = (path: string): Feed<UserFeedEventData> => ({
  path: `${path}/events`,
  // The smallest list: only its Last-Event-ID counts.
  read: { path: `${path}/conversations`, query: new URLSearchParams({ limit: '1', view: 'summary' }) },
  schema: UserFeedEventDataSchema
})

export async function * followEvents<D extends TypedData> (transport: Transport, feed: Feed<D>, options: EventsOptions = {}): AsyncGenerator<FeedItem<D>, void, undefined> {
  const { signal } = options
  if (signal?.aborted === true) return
  // Aborted by the caller's signal, or when the iteration ends for any reason: the fetch, the read and any wait stop.
  const stop = new AbortController()
  const onAbort = (): void => { stop.abort(signal?.reason) }
  signal?.addEventListener('abort', onAbort, { once: true })
  const pacer = new Pacer(transport.maxDelayMs, stop.signal)
  // One try: the pacer retries. An answer without Last-Event-ID (an older service) leaves `after` undefined.
  const position = async (): Promise<string | undefined> =>
    lastEventIdOf((await transport.send({ method: 'GET', ...feed.read, expect: [200], retryable: false, signal: stop.signal })).headers).lastEventId
  try {
    // Without a position, the feed would start wherever a reconnect happens to: a read pins "now" first.
    let after = options.after ?? await pacer.retry(position)
    for (;;) {
      const stream = new EventStream(feed.schema, await pacer.retry(async () => await transport.open(feed.path, { 'last-event-id': after }, stop.signal)))
      for await (const event of stream.events()) {
        after = event.id
        yield event
        if (event.type === feed.last) return
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
class EventStream<D extends TypedData> {
  alive = false
  readonly #schema: z.ZodType<D>
  readonly #body: ReadableStream<Uint8Array>

  constructor (schema: z.ZodType<D>, body: ReadableStream<Uint8Array>) {
    this.#schema = schema
    this.#body = body
  }

  /** Ends when the stream ends or breaks; the parser drops an event cut off in the middle. */
  async * events (): AsyncGenerator<FeedItem<D>, void, undefined> {
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
          yield toEvent(this.#schema, message)
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
function toEvent<D extends TypedData> (schema: z.ZodType<D>, message: EventSourceMessage): FeedItem<D> {
  const data = parse(schema, parseJson(message.data))
  if (message.id === undefined || message.id === '' || message.event !== data.type) {
    throw new ConversationStoreError(`The service sent an event without an id, or of a type (${String(message.event)}) other than its data's (${data.type})`, { code: 'INVALID_RESPONSE' })
  }
  // The cast only restates what the schema has just checked: the data is of the event's type.
  return { id: message.id, type: data.type, data } as FeedItem<D>
}
