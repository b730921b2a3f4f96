import { ConversationSchema, WorkflowStateSchema, type Conversation, type Message, type WorkflowState } from '../schemas.js'

// Stored records come back from Redis as strings. They pass the current schema before they
// reach a caller: a record this service did not write, or wrote under another schema, may
// not match it (CONTRACT-NOTES §11).

/** A conversation hash as the read script returns it. */
export type RawConversation = [
  body: string, userId: string, createdAt: string, updatedAt: string, expiresAt: string, version: string, count: string,
  messages: string, incarnation: string
]

/** The fields HMGET reads for a summary, in RawConversation order (no messages). */
export const SUMMARY_FIELDS = ['body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc'] as const

/** A validated record, with the message count the hash keeps beside the messages. */
export interface ParsedRecord { conversation: Conversation, messageCount: number }

/** Why a stored record cannot be answered; its message names the field, never the data. */
export class InvalidRecordError extends Error {
  override name = 'InvalidRecordError'
}

export function iso (ms: number): string {
  return new Date(ms).toISOString()
}

/** Parses and validates a conversation; throws InvalidRecordError. */
export function parseConversation (id: string, raw: RawConversation, withMessages: boolean): ParsedRecord {
  const [body, userId, createdAt, updatedAt, expiresAt, version, count, messages] = raw
  const candidate = {
    ...parseJson(body) as object,
    id,
    userId,
    createdAt: isoOf(createdAt),
    updatedAt: isoOf(updatedAt),
    expiresAt: isoOf(expiresAt),
    version: Number(version),
    messages: parseJson(messages) as Message[]
  }
  const parsed = ConversationSchema.safeParse(candidate)
  if (!parsed.success) throw new InvalidRecordError(describe(parsed.error))
  if (withMessages && parsed.data.messages.length !== Number(count)) throw new InvalidRecordError('message count does not match')
  return { conversation: parsed.data, messageCount: Number(count) }
}

/** Parses and validates a workflow state; throws InvalidRecordError. */
export function parseWorkflowState (id: string, body: string, version: number, updatedAt: number, expiresAt: number): WorkflowState {
  const candidate = { ...parseJson(body) as object, conversationId: id, version, updatedAt: isoOf(updatedAt), expiresAt: isoOf(expiresAt) }
  const parsed = WorkflowStateSchema.safeParse(candidate)
  if (!parsed.success) throw new InvalidRecordError(`workflow state: ${describe(parsed.error)}`)
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
