import { messageNotInProgress } from '../../errors.js'
import type { AppendResult, Message, MessageInput, PatchMessageBody, RewindResult } from '../../schemas.js'
import { MessageLog } from './message-log.js'
import { assertMessageLimit, newMessages, writeTime, type StoreLimits } from '../conversation-rules.js'
import { IdleStreamSweeper } from '../idle-streams.js'
import { applyDelta, editMessage, type Delta, type DeltaResult, type StreamLimits } from '../stream-rules.js'
import type { Tagged, WindowRequest } from '../types.js'
import { eventFields } from '../events.js'
import { sizeOf, tagsOf, type Entry } from './entries.js'

export interface MemoryMessageWritesOptions {
  limits: StreamLimits
  /** The store's limits: how many messages a conversation may hold. */
  storeLimits: StoreLimits
  clock: () => number
  /** The live entry of a conversation, without counting as a use. */
  live: (id: string) => Entry | undefined
  /**
   * A write to an entry's messages in place: version, times and TTLs move (the store's
   * #touch). A delta is not announced on its user's feed, which leaves deltas out.
   */
  touch: (entry: Entry, writeMs: number, announce?: boolean) => Entry
  assertFits: (bytes: number) => void
  onSweepError: (error: unknown) => void
}

/**
 * The memory backend's writes to the messages of one conversation, in place: edits (and the
 * finish of a streamed message), deletions, rewinds, deltas, and the sweep that times out
 * idle streams. Each is a write to the conversation (its version, times and TTLs move) with
 * its events. Each message log keeps where its streams stand (MessageLog); this keeps which
 * conversations have one, so the sweep looks at those only.
 */
export class MemoryMessageWrites {
  readonly #options: MemoryMessageWritesOptions
  readonly #streaming = new Set<string>()
  readonly #sweeper: IdleStreamSweeper

  constructor (options: MemoryMessageWritesOptions) {
    this.#options = options
    this.#sweeper = new IdleStreamSweeper(options.limits, async () => { this.#timeOutIdle() }, options.onSweepError)
  }

  /** Starts the streams of the in_progress messages an append has just added. */
  /**
   * Appends the messages whose ids are new (the others are skipped), starting the streams of
   * those in_progress, and answers the window after it, read in the same synchronous step,
   * so that it is of that version.
   */
  append (entry: Entry, inputs: MessageInput[], window?: WindowRequest): AppendResult & Tagged {
    const { clock, storeLimits, assertFits, touch } = this.#options
    const writeMs = writeTime(clock(), entry.body.updatedAt)
    const { added, skipped } = newMessages(entry.log, inputs, new Date(writeMs).toISOString())
    const withWindow = (result: AppendResult & Tagged): AppendResult & Tagged =>
      window === undefined ? result : { ...result, window: entry.log.window(window) }
    if (added.length === 0) {
      return withWindow({ appended: 0, skipped, version: entry.body.version, messageCount: entry.log.count, ...tagsOf(entry) })
    }
    assertMessageLimit(entry.log.count + added.length, storeLimits)
    assertFits(sizeOf(entry) + MessageLog.bytesOf(added))
    // Appending in place keeps the cost independent of the conversation's length.
    entry.log.add(added)
    entry.log.startStreams(added, writeMs)
    if (entry.log.streaming) this.#streaming.add(entry.body.id)
    const updated = touch(entry, writeMs)
    for (const message of added) updated.events.emit('message.created', updated.body.version, eventFields.message(message))
    return withWindow({ appended: added.length, skipped, version: updated.body.version, messageCount: updated.log.count, ...tagsOf(updated) })
  }

  /** Applies one delta to a message of the entry (stream-rules.ts): a write, unless it repeats one applied. */
  extend (entry: Entry, message: Message, delta: Delta): DeltaResult & Tagged {
    const { limits, clock, touch, assertFits } = this.#options
    const stream = entry.log.stream(message.id)
    if (stream === undefined) throw messageNotInProgress(message.id, message.status, message.statusReason)
    const text = applyDelta(stream, message.text ?? '', delta, limits.maxTextChars)
    const result = { messageId: message.id, seq: delta.seq }
    if (text === 'repeat') return { ...result, textLength: message.text?.length ?? 0, ...tagsOf(entry) }
    assertFits(sizeOf(entry) + delta.text.length)
    const writeMs = writeTime(clock(), entry.body.updatedAt)
    entry.log.extend({ ...message, text }, delta.text, writeMs)
    const updated = touch(entry, writeMs, false)
    updated.events.emit('message.delta', updated.body.version, eventFields.delta(message.id, delta.seq, delta.text))
    return { ...result, textLength: text.length, ...tagsOf(updated) }
  }

  /** A message edit (stream-rules.ts: it may finish a streamed message). */
  edit (entry: Entry, current: Message, patch: PatchMessageBody): { message: Message } & Tagged {
    const message = editMessage(current, patch)
    this.#options.assertFits(sizeOf(entry) + MessageLog.bytesOf([message]))
    entry.log.replace(message)
    const updated = this.#written(entry)
    updated.events.emit('message.updated', updated.body.version, eventFields.message(message))
    return { message, ...tagsOf(updated) }
  }

  /** Deletes the message (which must be there); its id stays used. */
  remove (entry: Entry, messageId: string): Tagged {
    entry.log.remove(messageId)
    const updated = this.#written(entry)
    updated.events.emit('message.deleted', updated.body.version, eventFields.messageDeleted(messageId))
    return tagsOf(updated)
  }

  /** Deletes every message after one (which must be there); nothing changes when none follows it. */
  rewind (entry: Entry, afterMessageId: string): RewindResult & Tagged {
    const removed = entry.log.removeAfter(afterMessageId)
    const updated = removed.length === 0 ? entry : this.#written(entry)
    for (const messageId of removed) updated.events.emit('message.deleted', updated.body.version, eventFields.messageDeleted(messageId))
    return { deleted: removed.length, messageCount: updated.log.count, version: updated.body.version, ...tagsOf(updated) }
  }

  close (): void {
    this.#sweeper.stop()
    this.#streaming.clear()
  }

  #written (entry: Entry): Entry {
    return this.#options.touch(entry, writeTime(this.#options.clock(), entry.body.updatedAt))
  }

  /** Ends the streams without a delta for the idle timeout: each becomes incomplete (`timeout`), a write. */
  #timeOutIdle (): void {
    const { limits, clock, live, touch } = this.#options
    const now = clock()
    for (const id of this.#streaming) {
      const entry = live(id)
      if (entry === undefined || !entry.log.streaming) {
        this.#streaming.delete(id)
        continue
      }
      const idle = entry.log.idleStreams(now - limits.idleTimeoutMs)
      if (idle.length === 0) continue
      const ended = idle.map((messageId) => editMessage(entry.log.find(messageId) as Message, { status: 'incomplete', statusReason: 'timeout' }))
      for (const message of ended) entry.log.replace(message)
      const updated = touch(entry, writeTime(now, entry.body.updatedAt))
      for (const message of ended) updated.events.emit('message.updated', updated.body.version, eventFields.message(message))
    }
  }
}
