import {
  deltaOutOfOrder, MessageInProgressError, MessageTooLargeError, messageNotInProgress
} from '../errors.js'
import type { Message, PatchMessageBody } from '../schemas.js'
import { patchMessage, withTextLast } from './conversation-rules.js'

// Streamed messages: a message appended `in_progress` grows by numbered deltas until it is
// finished (`completed`) or stopped (`incomplete`, with a reason). These rules are shared by
// both backends and free of I/O; the Redis scripts apply the same ones (lua/append-delta.lua).

export interface StreamLimits {
  /** An in_progress message without a delta for this long becomes incomplete (`timeout`). */
  idleTimeoutMs: number
  /** The most characters (UTF-16 units) a streamed message's text may reach. */
  maxTextChars: number
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = Object.freeze({ idleTimeoutMs: 120_000, maxTextChars: 1024 * 1024 })

export interface Delta { seq: number, text: string }

/** What a delta answers: the text acknowledged so far, in characters. */
export interface DeltaResult { messageId: string, seq: number, textLength: number }

/**
 * Where a stream stands: the last seq applied, the text's length after each seq (ends[0]:
 * the text it started with), and when it last grew.
 */
export interface StreamState { seq: number, ends: number[], lastDeltaAt: number }

/** How often a store looks for idle streams: often enough that a timeout lands within 10 s of its due time. */
export function sweepIntervalMs ({ idleTimeoutMs }: StreamLimits): number {
  return Math.min(5000, Math.max(100, Math.floor(idleTimeoutMs / 4)))
}

/** A copy (fork, import) holds no live stream: an in_progress message is copied as incomplete, for `reason`. */
export function settledCopy<M extends { status?: Message['status'] | undefined, statusReason?: string | undefined }> (message: M, reason: string): M {
  return message.status === 'in_progress' ? { ...message, status: 'incomplete', statusReason: reason } : message
}

/**
 * Checks a delta against the stream: 'repeat' for a seq already applied with the same text
 * (a retry: nothing changes), else the text after it. A gap, or an applied seq with other
 * text, is DELTA_OUT_OF_ORDER; text past the bound is 413.
 */
export function applyDelta (state: StreamState, text: string, delta: Delta, maxTextChars: number): 'repeat' | string {
  if (delta.seq <= state.seq) {
    if (text.slice(state.ends[delta.seq - 1], state.ends[delta.seq]) === delta.text) return 'repeat'
    throw deltaOutOfOrder(state.seq + 1)
  }
  if (delta.seq !== state.seq + 1) throw deltaOutOfOrder(state.seq + 1)
  if (text.length + delta.text.length > maxTextChars) throw new MessageTooLargeError(maxTextChars)
  return text + delta.text
}

/**
 * A message edit (JSON merge patch), which may also change the status of a streamed
 * message: only an in_progress message may, once. While it streams, its text changes by
 * deltas only.
 */
export function editMessage (current: Message, patch: PatchMessageBody): Message {
  const { status, statusReason, ...fields } = patch
  if (status === undefined) {
    if (current.status !== 'in_progress') return patchMessage(current, fields)
    if (fields.text !== undefined) throw new MessageInProgressError(current.id)
    return withTextLast(patchMessage(current, fields))
  }
  if (current.status !== 'in_progress') throw messageNotInProgress(current.id, current.status, current.statusReason)
  const { statusReason: _none, ...edited } = patchMessage(current, fields)
  return status === 'incomplete' ? { ...edited, status, statusReason: statusReason as string } : { ...edited, status }
}
