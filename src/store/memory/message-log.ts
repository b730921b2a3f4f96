import type { Message, MessageWindow, MessageWithTokens } from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import type { StreamState } from '../stream-rules.js'
import { withTokens } from '../conversation-rules.js'
import { MAX_WINDOW_MESSAGES, type MessageQuery, type WindowRequest } from '../types.js'

/** A page of a message log: the items and, when more follow, the position to go on from. */
export interface LogPage { items: MessageWithTokens[], nextSeq: number | null, totalTokens?: number }

/**
 * The messages of one conversation in the memory backend, in append order. Each message
 * has a position (seq) that never changes, so pages continue from a position rather than
 * an offset; its token count is taken once, when it is written; and its id stays used
 * after it is deleted, so a retried append cannot bring it back.
 */
export class MessageLog {
  readonly #messages: Message[] = []
  readonly #seqs: number[] = []
  readonly #tokens = new Map<string, number>()
  readonly #usedIds = new Set<string>()
  // The in_progress messages, by id: where each stream stands (stream-rules.ts).
  readonly #streams = new Map<string, StreamState>()
  readonly #countTokens: TokenCounter
  #lastSeq = 0
  /** The stored size of the messages (their JSON), kept as they change. */
  bytes = 0

  /** `tokens`, when given, are the messages' counts (a fork's, taken by the same counter). */
  constructor (countTokens: TokenCounter, messages: Message[] = [], tokens?: number[]) {
    this.#countTokens = countTokens
    this.add(messages, tokens)
  }

  get count (): number { return this.#messages.length }

  /** All messages, oldest first, as a new array. */
  all (): Message[] { return this.#messages.slice() }

  /** The newest `n`, oldest first. */
  last (n: number): Message[] { return n === 0 ? [] : this.#messages.slice(-n) }

  /** The newest `n`, oldest first, with their token counts. */
  lastWithTokens (n: number): MessageWithTokens[] {
    return this.last(n).map((message) => withTokens(message, this.#tokens.get(message.id) as number))
  }

  has (messageId: string): boolean { return this.#usedIds.has(messageId) }

  find (messageId: string): Message | undefined {
    const index = this.#indexOf(messageId)
    return index === -1 ? undefined : this.#messages[index]
  }

  /** The stored size that adding these messages would add. */
  static bytesOf (messages: Message[]): number {
    let bytes = 0
    for (const message of messages) bytes += JSON.stringify(message).length + 1
    return bytes
  }

  /** The messages through `messageId` (all without it), oldest first, with their token counts. */
  through (messageId?: string): { messages: Message[], tokens: number[] } {
    const messages = messageId === undefined ? this.all() : this.#messages.slice(0, this.#indexOf(messageId) + 1)
    return { messages, tokens: messages.map((message) => this.#tokens.get(message.id) as number) }
  }

  add (messages: Message[], tokens?: number[]): void {
    for (const [i, message] of messages.entries()) {
      this.#messages.push(message)
      this.#seqs.push(++this.#lastSeq)
      this.#tokens.set(message.id, tokens?.[i] ?? this.#countTokens(message))
      this.#usedIds.add(message.id)
    }
    this.bytes += MessageLog.bytesOf(messages)
  }

  replace (message: Message): void {
    this.#put(message, this.#countTokens(message))
    if (message.status !== 'in_progress') this.#streams.delete(message.id)
  }

  /** Starts the streams of the in_progress messages among `messages`, just added. */
  startStreams (messages: Message[], nowMs: number): void {
    for (const message of messages) {
      if (message.status === 'in_progress') this.#streams.set(message.id, { seq: 0, ends: [message.text?.length ?? 0], lastDeltaAt: nowMs })
    }
  }

  /** Where the stream of an in_progress message stands; undefined for any other message. */
  stream (messageId: string): Readonly<StreamState> | undefined { return this.#streams.get(messageId) }

  /**
   * Applies the next delta of a stream: the message with its new text. While it streams, a
   * message's token count adds each delta's own count, an estimate; it is counted exactly
   * when it ends (replace).
   */
  extend (message: Message, deltaText: string, nowMs: number): void {
    const state = this.#streams.get(message.id) as StreamState
    this.#put(message, (this.#tokens.get(message.id) as number) + this.#countTokens({ text: deltaText }))
    state.seq++
    state.ends.push(message.text?.length ?? 0)
    state.lastDeltaAt = nowMs
  }

  /** The ids of the streams without a delta since `idleSince`. */
  idleStreams (idleSince: number): string[] {
    return [...this.#streams].filter(([, state]) => state.lastDeltaAt <= idleSince).map(([id]) => id)
  }

  get streaming (): boolean { return this.#streams.size > 0 }

  #put (message: Message, tokens: number): void {
    const index = this.#indexOf(message.id)
    this.bytes += MessageLog.bytesOf([message]) - MessageLog.bytesOf([this.#messages[index] as Message])
    this.#messages[index] = message
    this.#tokens.set(message.id, tokens)
  }

  /** Removes every message after `messageId` (which must be there); their ids stay used. Answers their ids. */
  removeAfter (messageId: string): string[] {
    const removed = this.#messages.splice(this.#indexOf(messageId) + 1)
    this.#seqs.splice(this.#messages.length)
    for (const message of removed) {
      this.#tokens.delete(message.id)
      this.#streams.delete(message.id)
    }
    this.bytes -= MessageLog.bytesOf(removed)
    return removed.map((message) => message.id)
  }

  /** Removes a message; its id stays used. */
  remove (messageId: string): void {
    const index = this.#indexOf(messageId)
    this.bytes -= MessageLog.bytesOf([this.#messages[index] as Message])
    this.#messages.splice(index, 1)
    this.#seqs.splice(index, 1)
    this.#tokens.delete(messageId)
    this.#streams.delete(messageId)
  }

  /** The window an append answers (CONTRACT-NOTES §16), from the log as the append left it. */
  window (request: WindowRequest): MessageWindow {
    const items = 'maxTokens' in request
      ? this.#window(request.maxTokens, MAX_WINDOW_MESSAGES).items
      : this.lastWithTokens(request.last)
    return { items, totalTokens: items.reduce((sum, message) => sum + (message.tokens ?? 0), 0), messageCount: this.count }
  }

  page (query: MessageQuery): LogPage {
    return query.maxTokens === undefined ? this.#page(query) : this.#window(query.maxTokens, query.limit)
  }

  #page ({ limit, order, after }: MessageQuery): LogPage {
    const items: MessageWithTokens[] = []
    if (order === 'asc') {
      const start = after === undefined ? 0 : this.#firstAfter(after.seq)
      for (let i = start; i < this.#messages.length && items.length < limit; i++) items.push(this.#messages[i] as Message)
      const lastIndex = start + items.length - 1
      return { items, nextSeq: lastIndex < this.#messages.length - 1 ? this.#seqs[lastIndex] as number : null }
    }
    const start = (after === undefined ? this.#messages.length : this.#firstAfter(after.seq - 1)) - 1
    for (let i = start; i >= 0 && items.length < limit; i--) items.push(this.#messages[i] as Message)
    const lastIndex = start - items.length + 1
    return { items, nextSeq: lastIndex > 0 ? this.#seqs[lastIndex] as number : null }
  }

  /** The newest messages whose tokens fit, stopping at the first that does not. */
  #window (maxTokens: number, limit: number): LogPage {
    const items: MessageWithTokens[] = []
    let totalTokens = 0
    for (let i = this.#messages.length - 1; i >= 0 && items.length < limit; i--) {
      const message = this.#messages[i] as Message
      const tokens = this.#tokens.get(message.id) as number
      if (totalTokens + tokens > maxTokens) break
      totalTokens += tokens
      items.push(withTokens(message, tokens))
    }
    return { items, nextSeq: null, totalTokens }
  }

  /** The index of the first message positioned after `seq` (binary search). */
  #firstAfter (seq: number): number {
    let low = 0
    let high = this.#seqs.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((this.#seqs[middle] as number) <= seq) low = middle + 1
      else high = middle
    }
    return low
  }

  #indexOf (messageId: string): number {
    return this.#tokens.has(messageId) ? this.#messages.findIndex((message) => message.id === messageId) : -1
  }
}
