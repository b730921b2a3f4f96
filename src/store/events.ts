import { InvalidRequestError } from '../errors.js'
import { ConversationSummarySchema, WorkflowStateSchema, type ConversationSummary, type Message, type WorkflowState } from '../schemas.js'
import { compileSerializer } from '../serialization.js'

// A conversation's events: one per change, in the conversation's write order, kept with the
// conversation (the newest EVENTS_RETAINED) and followed over server-sent events. Both
// backends write them in the same atomic step as the change (CONTRACT-NOTES §15).

export const EVENT_TYPES = [
  'message.created', 'message.delta', 'message.updated', 'message.deleted', 'conversation.updated',
  'workflow_state.updated', 'workflow_state.deleted', 'conversation.deleted'
] as const
export type EventType = typeof EVENT_TYPES[number]

/** How many events a conversation keeps by default (EVENTS_RETAINED). */
export const DEFAULT_EVENTS_RETAINED = 10_000

/**
 * One event as a feed sends it: `id` (its position), `type`, and `data`, JSON text with
 * `type`, `conversationId`, `version` and the type's own fields. `reset` says that the
 * position asked for is older than what is kept: re-read, then go on from its `id`.
 */
export interface FeedEvent { id: string, type: EventType | 'conversation.created' | 'reset', data: string }

/** What a store's follow() answers: call close() when the follower leaves. */
export interface Following { close: () => void }

/**
 * A position: the incarnation of the conversation and the number of its events so far.
 * Opaque to clients, who echo it as received.
 */
export function positionOf (incarnation: string, seq: number): string {
  return `${incarnation}-${seq}`
}

/**
 * The seq a position names, for a conversation of this incarnation whose newest event is
 * `last`. A position the service never gave, or one of another conversation or
 * incarnation, is 400.
 */
export function seqOf (position: string, incarnation: string, last: number): number {
  const at = position.lastIndexOf('-')
  const seq = Number(position.slice(at + 1))
  if (at === -1 || position.slice(0, at) !== incarnation || !/^\d+$/.test(position.slice(at + 1)) || seq > last) {
    throw new InvalidRequestError('Last-Event-ID names no position of this conversation')
  }
  return seq
}

/**
 * The position of a user's feed before its first event: what a list answers for a user
 * whose feed holds nothing yet. A follower from it gets the whole feed, which began after.
 */
export const NO_USER_FEED = '0-0'

/**
 * The seq a position of a user's feed names, for a feed of this epoch whose newest event is
 * `last`; null for a well-formed position of an earlier epoch (the feed started over since:
 * the follower gets a reset). A position the service never gave is 400.
 */
export function userSeqOf (position: string, epoch: string, last: number): number | null {
  if (position === NO_USER_FEED) return 0
  const at = position.lastIndexOf('-')
  if (at > 0 && position.slice(0, at) !== epoch && /^[\w-]{1,32}-\d{1,15}$/.test(position)) return null
  return seqOf(position, epoch, last)
}

/** An event's data: its type, conversation and version, then the type's fields (a JSON object's text). */
export function eventData (type: string, conversationId: string, version: number | string, fields: string): string {
  const head = `{"type":${JSON.stringify(type)},"conversationId":${JSON.stringify(conversationId)},"version":${version}`
  return fields === '{}' ? `${head}}` : `${head},${fields.slice(1)}`
}

/** The event a follower gets for a position older than what is kept: its id is where to go on from. */
export function resetEvent (conversationId: string, incarnation: string, last: number, version: number): FeedEvent {
  return { id: positionOf(incarnation, last), type: 'reset', data: eventData('reset', conversationId, version, '{}') }
}

// A user's feed: one event per write of one of the user's conversations (deltas excepted),
// kept per user (the newest EVENTS_RETAINED) and followed like a conversation's feed.

export const USER_EVENT_TYPES = ['conversation.created', 'conversation.updated', 'conversation.deleted'] as const
export type UserEventType = typeof USER_EVENT_TYPES[number]

/** The event a follower of a user's feed gets for a position older than what is kept: list again, then go on from its id. */
export function userResetEvent (userId: string, epoch: string, last: number): FeedEvent {
  return { id: positionOf(epoch, last), type: 'reset', data: JSON.stringify({ type: 'reset', userId }) }
}

const serializeSummary = compileSerializer(ConversationSummarySchema)
const serializeWorkflowState = compileSerializer(WorkflowStateSchema)

/** The fields of each type of event, as a JSON object's text; the Redis scripts build the same text. */
export const eventFields = {
  message: (message: Message): string => `{"message":${JSON.stringify(message)}}`,
  delta: (messageId: string, seq: number, text: string): string => JSON.stringify({ messageId, seq, text }),
  messageDeleted: (messageId: string): string => JSON.stringify({ messageId }),
  conversation: (summary: ConversationSummary): string => `{"conversation":${serializeSummary(summary)}}`,
  workflowState: (state: WorkflowState): string => `{"workflowState":${serializeWorkflowState(state)}}`,
  /** A user's feed names the tenant of a deleted conversation, so that each follower's reach applies to it. */
  deletedFor: (tenantId: string): string => JSON.stringify({ tenantId }),
  none: (): string => '{}'
}
