import { ConversationSchema, MessageSchema, WorkflowStateSchema, type Conversation, type Message, type WorkflowState } from '../../schemas.js'
import type { MessageSelection } from '../types.js'

// Stored records come back from Redis as strings. They pass the current schema before they
// reach a caller: a record this service did not write, or wrote under another schema, may
// not match it (CONTRACT-NOTES §11).

/**
 * Written into every conversation this release creates or replaces, and kept by the writes
 * after (which validate what they add). Change it whenever the stored shape or the schema
 * changes: records without the current stamp are validated on every read.
 */
export const SCHEMA_STAMP = 'v2'

/**
 * A conversation hash as the read script returns it, with its messages' stored bodies one
 * per line ('' for none; see validated-messages.ts). The fingerprint names the version and
 * the stamp ('' without the current stamp): a view validated once may be answered again
 * for the same fingerprint (view-cache.ts).
 */
export type RawConversation = [
  body: string, userId: string, createdAt: string, updatedAt: string, expiresAt: string, version: string, count: string,
  messages: string, incarnation: string, fingerprint: string, lastEvent?: string
]

/** The fields HMGET reads for a summary, in RawConversation order (no messages), and the stamp. */
export const SUMMARY_FIELDS = ['body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv'] as const

/**
 * A record's fingerprint, as the read script computes it: incarnation, version, stamp and
 * the body's length in bytes (a cheap check that the body is still the one written).
 */
export function fingerprintOf (incarnation: string, version: string, stamp: string | null, body: string): string {
  return fingerprintOfLength(incarnation, version, stamp, Buffer.byteLength(body))
}

/** The same, from the body's length in bytes (HSTRLEN). */
export function fingerprintOfLength (incarnation: string, version: string, stamp: string | null, bodyBytes: number): string {
  return stamp === SCHEMA_STAMP ? `${incarnation}.${version}.${stamp}.${bodyBytes}` : ''
}

/** A validated record, with the message count the hash keeps beside the messages. */
export interface ParsedRecord { conversation: Conversation, messageCount: number }

/** Why a stored record cannot be answered; its message names the field, never the data. */
export class InvalidRecordError extends Error {
  override name = 'InvalidRecordError'
}

export function iso (ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * Parses and validates a conversation read with `selection`'s messages (none: a summary,
 * whose messages the caller drops), given those messages already validated; throws
 * InvalidRecordError.
 */
export function parseConversation (id: string, raw: RawConversation, selection: MessageSelection, messages: Message[] = []): ParsedRecord {
  const [body, userId, createdAt, updatedAt, expiresAt, version, count] = raw
  const candidate = {
    ...parseJson(body) as object,
    id,
    userId,
    createdAt: isoOf(createdAt),
    updatedAt: isoOf(updatedAt),
    expiresAt: isoOf(expiresAt),
    version: Number(version),
    messages: [],
    messageCount: Number(count)
  }
  const parsed = ConversationSchema.safeParse(candidate)
  if (!parsed.success) throw new InvalidRecordError(describe(parsed.error))
  const expected = selection === 'all' ? parsed.data.messageCount : selection === 'none' ? 0 : Math.min(selection.last, parsed.data.messageCount)
  if (messages.length !== expected) throw new InvalidRecordError('message count does not match')
  return { conversation: { ...parsed.data, messages }, messageCount: parsed.data.messageCount }
}

/** Parses and validates a workflow state; throws InvalidRecordError. */
export function parseWorkflowState (id: string, body: string, version: number, updatedAt: number, expiresAt: number): WorkflowState {
  const candidate = { ...parseJson(body) as object, conversationId: id, version, updatedAt: isoOf(updatedAt), expiresAt: isoOf(expiresAt) }
  const parsed = WorkflowStateSchema.safeParse(candidate)
  if (!parsed.success) throw new InvalidRecordError(`workflow state: ${describe(parsed.error)}`)
  return parsed.data
}

/** One stored message; throws InvalidRecordError. */
export function parseMessage (json: string): Message {
  const parsed = MessageSchema.safeParse(parseJson(json))
  if (!parsed.success) throw new InvalidRecordError(`message: ${describe(parsed.error)}`)
  return parsed.data
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new InvalidRecordError('not JSON')
  }
}

function isoOf (ms: string | number): string {
  const date = new Date(Number(ms))
  if (Number.isNaN(date.getTime())) throw new InvalidRecordError('a timestamp is not a number')
  return date.toISOString()
}

function describe (error: { issues: Array<{ path: PropertyKey[], message: string }> }): string {
  const issue = error.issues[0]
  return issue === undefined ? 'invalid' : `${issue.path.map(String).join('.')}: ${issue.message}`
}
