import { z } from 'zod'
import { ErrorBodySchema } from '../../../src/schemas.js'
import type { MessageStatusSchema } from '../../../src/stream-schemas.js'

// What the client makes of the service's answers: typed errors, parsed bodies, ETags.

export interface Versioned {
  /** The `ETag` header as received; it names this version of this incarnation. */
  etag: string
  version: number
}

export interface Positioned {
  /**
   * The `Last-Event-ID` header: the position of the newest event that the answer reflects, from
   * which the feed goes on: a conversation's (`events(id, { after })`), or for a list of a
   * user's conversations the user's (`userEvents(userId, { after })`). Absent only from a
   * service older than that feed.
   */
  lastEventId?: string
}

/** The API's stable error codes, plus the client's own; any other string may also appear. */
export type ConversationStoreErrorCode =
  | 'CONVERSATION_NOT_FOUND' | 'WORKFLOW_STATE_NOT_FOUND' | 'MESSAGE_NOT_FOUND' | 'CONVERSATION_EXISTS' | 'USER_MISMATCH'
  | 'PRECONDITION_FAILED' | 'TOO_MANY_MESSAGES' | 'CONVERSATION_TOO_LARGE' | 'FST_ERR_VALIDATION' | 'UNAUTHORIZED' | 'CORRUPT_RECORD'
  | 'STORE_UNAVAILABLE'
  /** Streamed messages: `expectedSeq` names the seq the message takes next. */
  | 'DELTA_OUT_OF_ORDER'
  /** Streamed messages: the message was finished or stopped; `status` and `statusReason` say how. */
  | 'MESSAGE_NOT_IN_PROGRESS'
  | 'MESSAGE_IN_PROGRESS' | 'DELTA_TOO_LARGE' | 'MESSAGE_TOO_LARGE'
  /** The request never got an HTTP answer (refused, reset, DNS, aborted); `statusCode` is undefined. */
  | 'NETWORK_ERROR'
  /** A success answer that does not match the schemas (e.g. the service is newer than this client). */
  | 'INVALID_RESPONSE'
  /** An error answer without the API's JSON error body (e.g. from a proxy); `statusCode` is set. */
  | 'HTTP_ERROR'
  | (string & {})

interface ErrorDetails {
  code: string
  statusCode?: number
  retryAfterSeconds?: number
  cause?: unknown
  expectedSeq?: number | undefined
  status?: z.output<typeof MessageStatusSchema> | undefined
  statusReason?: string | undefined
}

export class ConversationStoreError extends Error {
  override name = 'ConversationStoreError'
  /** The HTTP status; undefined when there was no HTTP answer (`NETWORK_ERROR`). */
  readonly statusCode: number | undefined
  readonly code: ConversationStoreErrorCode
  /** From `Retry-After` (seconds), when the service sent one. */
  readonly retryAfterSeconds: number | undefined
  /** DELTA_OUT_OF_ORDER: the seq the message takes next. */
  readonly expectedSeq: number | undefined
  /** MESSAGE_NOT_IN_PROGRESS: the message's status, and why it is incomplete. */
  readonly status: z.output<typeof MessageStatusSchema> | undefined
  readonly statusReason: string | undefined

  constructor (message: string, details: ErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = details.code
    this.statusCode = details.statusCode
    this.retryAfterSeconds = details.retryAfterSeconds
    this.expectedSeq = details.expectedSeq
    this.status = details.status
    this.statusReason = details.statusReason
  }
}

export function backoff (attempt: number): number {
  return 100 * 2 ** (attempt - 1)
}

/** fetch rejects with a bare "fetch failed"; the useful part (ECONNREFUSED …) is its cause. */
export function reason (error: unknown): string {
  const detail = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : ''
  return `${error instanceof Error ? error.message : String(error)}${detail}`
}

export function parseJson (text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

export function parse<S extends z.ZodType> (schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body)
  if (!result.success) throw invalid(result.error)
  return result.data
}

export function invalid (error: z.ZodError): ConversationStoreError {
  return new ConversationStoreError(`The service answered with an unexpected body: ${z.prettifyError(error)}`, { code: 'INVALID_RESPONSE', cause: error })
}

/** The ETag header and the version of the body it came with. */
export function versioned (headers: Headers, version: number): Versioned {
  return { etag: etagOf(headers), version }
}

/** The Last-Event-ID header, when the answer has one. */
export function lastEventIdOf (headers: Headers): Positioned {
  const position = headers.get('last-event-id')
  return position === null || position === '' ? {} : { lastEventId: position }
}

/** The ETag header, which must be a strong entity tag. */
export function etagOf (headers: Headers): string {
  const etag = headers.get('etag')
  if (etag === null || !/^"[^"]*"$/.test(etag)) {
    throw new ConversationStoreError(`The service sent no usable ETag (${String(etag)})`, { code: 'INVALID_RESPONSE' })
  }
  return etag
}

export function errorFrom (statusCode: number, headers: Headers, body: unknown): ConversationStoreError {
  const parsed = ErrorBodySchema.safeParse(body)
  if (!parsed.success) return new ConversationStoreError(`HTTP ${statusCode}`, { code: 'HTTP_ERROR', statusCode, ...retryAfterOf(headers) })
  const { code, message, expectedSeq, status, statusReason } = parsed.data
  return new ConversationStoreError(message, { code, statusCode, ...retryAfterOf(headers), expectedSeq, status, statusReason })
}

function retryAfterOf (headers: Headers): { retryAfterSeconds?: number } {
  // The service sends whole seconds; anything else (e.g. an HTTP date) is ignored.
  const retryAfter = /^\s*(\d+)\s*$/.exec(headers.get('retry-after') ?? '')?.[1]
  return retryAfter === undefined ? {} : { retryAfterSeconds: Number(retryAfter) }
}
