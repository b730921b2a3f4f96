import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Message } from '../../../src/schemas.js'
import { ConversationStoreError } from './client-answers.js'
import type {
  DeltaResult, MessageDelta, MessagePatch, NewMessage, StreamedMessageInput, StreamMessageOptions, StreamMessageResult
} from './client-types.js'

// streamMessage: a text stream (a model's answer as it is generated) into one message. The
// message is appended in_progress, the text goes in as numbered deltas, and a PATCH of its
// status ends it. Two loops run side by side: the reader pulls the source as fast as it
// yields, and the writer sends what has piled up, one request at a time and at most one per
// flushMs, so a fast source costs a few requests, not one per token. A delta is retried (by
// the client's `retry`) with the same seq and text, which the service answers as a repeat.

/** The requests of one stream, bound to its conversation by client.ts. */
export interface StreamCalls {
  start: (message: NewMessage & { id: string }) => Promise<void>
  delta: (messageId: string, delta: MessageDelta) => Promise<DeltaResult>
  /** A PATCH of the status; safe to repeat, as a repeat answers MESSAGE_NOT_IN_PROGRESS. */
  finish: (messageId: string, patch: MessagePatch) => Promise<Message>
}

/** One step of the reader: a piece of text, or why it stopped. */
type Step =
  | { kind: 'piece', text: string }
  | { kind: 'done' }
  | { kind: 'failed', error: unknown }
  | { kind: 'aborted', reason: unknown }
  | { kind: 'halted' }
type Ending = Exclude<Step, { kind: 'piece' }>

const DEFAULT_FLUSH_MS = 50
const DEFAULT_MAX_DELTA_CHARS = 16 * 1024

export async function streamMessage (
  calls: StreamCalls, message: StreamedMessageInput, source: AsyncIterable<string>, options: StreamMessageOptions = {}
): Promise<StreamMessageResult> {
  const { signal, flushMs = DEFAULT_FLUSH_MS, maxDeltaChars = DEFAULT_MAX_DELTA_CHARS } = options
  signal?.throwIfAborted()
  const messageId = message.id ?? randomUUID()
  await calls.start({ ...message, id: messageId, status: 'in_progress' })

  const writer = new DeltaWriter(async (delta) => await calls.delta(messageId, delta), message.text?.length ?? 0, flushMs, maxDeltaChars)
  const interrupt = new Interrupt()
  // A delta that fails for good (after the client's retries) stops the reader.
  writer.done.catch(() => interrupt.fire({ kind: 'halted' }))
  const onAbort = (): void => interrupt.fire({ kind: 'aborted', reason: signal?.reason })
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted === true) onAbort()
  try {
    const ending = await read(source, writer, interrupt)
    return await settle(calls, messageId, writer, ending)
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Ends the message once the reader has stopped: what was read is written first (unless the
 * writer failed), then the message is finished `completed`, or `incomplete` with
 * `cancelled` (the signal) or `error` (the source or a delta failed), and the call rejects.
 * When someone else ended it first (a cancel, the idle timeout), the result says how.
 */
async function settle (calls: StreamCalls, messageId: string, writer: DeltaWriter, ending: Ending): Promise<StreamMessageResult> {
  writer.end()
  const failure = await writer.done.then(() => undefined, (error: unknown) => ({ error }))
  const written = { messageId, textLength: writer.textLength, deltas: writer.seq }
  if (ending.kind === 'aborted' || ending.kind === 'failed' || (failure !== undefined && endedBy(failure.error) === undefined)) {
    const statusReason = ending.kind === 'aborted' ? 'cancelled' : 'error'
    // Best effort: when it fails, the idle timeout ends the message instead.
    await calls.finish(messageId, { status: 'incomplete', statusReason }).catch(() => undefined)
    if (ending.kind === 'aborted') throw ending.reason
    throw ending.kind === 'failed' ? ending.error : failure?.error
  }
  const stopped = failure === undefined ? undefined : endedBy(failure.error)
  if (stopped !== undefined) return { ...written, ...stopped }
  try {
    const finished = await calls.finish(messageId, { status: 'completed' })
    return { ...written, textLength: finished.text?.length ?? 0, status: 'completed' }
  } catch (error) {
    // Someone ended it between the last delta and this PATCH, or a retry found it finished.
    const ended = endedBy(error)
    if (ended === undefined) throw error
    return { ...written, ...ended }
  }
}

/** How a message was ended by someone else, from a 409 MESSAGE_NOT_IN_PROGRESS; undefined for any other error. */
function endedBy (error: unknown): Pick<StreamMessageResult, 'status' | 'statusReason'> | undefined {
  if (!(error instanceof ConversationStoreError) || error.code !== 'MESSAGE_NOT_IN_PROGRESS') return undefined
  if (error.status === 'completed') return { status: 'completed' }
  return error.statusReason === undefined ? { status: 'incomplete' } : { status: 'incomplete', statusReason: error.statusReason }
}

/** Pulls the source into the writer until it ends or throws, or the stream is interrupted. */
async function read (source: AsyncIterable<string>, writer: DeltaWriter, interrupt: Interrupt): Promise<Ending> {
  let iterator: AsyncIterator<string>
  try {
    iterator = source[Symbol.asyncIterator]()
  } catch (error) {
    return { kind: 'failed', error }
  }
  for (;;) {
    const step = await interrupt.race(async () => await pull(iterator))
    if (step.kind === 'piece') {
      writer.write(step.text)
      continue
    }
    if (step.kind === 'aborted' || step.kind === 'halted') stopSource(iterator)
    return step
  }
}

async function pull (iterator: AsyncIterator<string>): Promise<Step> {
  try {
    const result = await iterator.next()
    return result.done === true ? { kind: 'done' } : { kind: 'piece', text: result.value }
  } catch (error) {
    return { kind: 'failed', error }
  }
}

/** Asks the source to stop (a generator runs its `finally`), without waiting: a source stuck in its own await must not hold the stream up. */
function stopSource (iterator: AsyncIterator<string>): void {
  try {
    iterator.return?.().catch(() => {})
  } catch {}
}

/** One standing interruption (abort, a failed writer) raced against each pull, without piling a reaction per pull onto it. */
class Interrupt {
  #step: Ending | undefined
  #waiting: ((step: Step) => void) | undefined

  fire (step: Ending): void {
    if (this.#step !== undefined) return
    this.#step = step
    this.#waiting?.(step)
  }

  /** `next` is not called once interrupted. */
  async race (next: () => Promise<Step>): Promise<Step> {
    if (this.#step !== undefined) return this.#step
    return await new Promise<Step>((resolve) => {
      this.#waiting = resolve
      next().then(resolve, () => {})
    })
  }
}

/** Sends text as numbered deltas: one request at a time, at most one per flushMs, coalescing what arrives meanwhile. */
class DeltaWriter {
  /** The last seq acknowledged, which is also how many deltas were. */
  seq = 0
  textLength: number
  /** Settles once end() was called and everything was written; rejects with the error of a delta. */
  readonly done: Promise<void>
  #pending = ''
  #ended = false
  #wake: (() => void) | undefined
  readonly #send: (delta: MessageDelta) => Promise<DeltaResult>
  readonly #flushMs: number
  readonly #maxChars: number

  constructor (send: (delta: MessageDelta) => Promise<DeltaResult>, textLength: number, flushMs: number, maxChars: number) {
    this.#send = send
    this.textLength = textLength
    this.#flushMs = flushMs
    this.#maxChars = Math.max(1, maxChars)
    this.done = this.#run()
  }

  write (text: string): void {
    this.#pending += text
    this.#notify()
  }

  end (): void {
    this.#ended = true
    this.#notify()
  }

  #notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async #run (): Promise<void> {
    let lastSentAt = -Infinity
    for (;;) {
      while (this.#pending === '' && !this.#ended) await new Promise<void>((resolve) => { this.#wake = resolve })
      if (this.#pending === '') return
      // What is left once the source ended goes at once.
      const waitMs = lastSentAt + this.#flushMs - Date.now()
      if (waitMs > 0 && !this.#ended) await sleep(waitMs)
      const text = this.#pending.slice(0, this.#maxChars)
      this.#pending = this.#pending.slice(text.length)
      lastSentAt = Date.now()
      const result = await this.#send({ seq: this.seq + 1, text })
      this.seq = result.seq
      this.textLength = result.textLength
    }
  }
}
