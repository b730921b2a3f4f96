import { MessageNotFoundError } from '../../errors.js'
import type { Conversation, ConversationSummary, Message, WorkflowState } from '../../schemas.js'
import { tagOf, type ConversationBody } from '../conversation-rules.js'
import type { EventType } from '../events.js'
import { liveState } from './workflow-states.js'
import type { MessageLog } from './message-log.js'
import type { MemoryEventLog } from './event-log.js'
import type { IndexKey } from './user-index.js'
import type { ConversationSnapshot, Tagged, TaggedConversation, TaggedWorkflowState } from '../types.js'

// What the memory backend keeps per conversation, and the views it answers with.

export interface StoredState { state: WorkflowState, incarnation: string, bytes: number }

export interface Entry {
  body: ConversationBody
  /** Made at create; tags name it, so tags of a deleted conversation never match again. */
  incarnation: string
  log: MessageLog
  /** Stored size of the body; the log keeps its own, so that an append stays O(1). */
  bodyBytes: number
  workflowState?: StoredState
  /** The events of this incarnation, and their followers. */
  events: MemoryEventLog
}

export const sizeOf = (entry: Entry): number => entry.bodyBytes + entry.log.bytes + (entry.workflowState?.bytes ?? 0)

export function tagOfEntry (entry: Entry): string {
  return tagOf(entry.incarnation, entry.body.version)
}

/** The entity tag and the event position of an entry's current version. */
export function tagsOf (entry: Entry): Tagged {
  return { etag: tagOfEntry(entry), position: entry.events.position }
}

export function summaryOf (entry: Entry): ConversationSummary {
  return { ...entry.body, messageCount: entry.log.count }
}

export function viewOf (entry: Entry): Conversation {
  return { ...entry.body, messages: entry.log.all(), messageCount: entry.log.count }
}

export function tagged (entry: Entry): TaggedConversation {
  return { ...viewOf(entry), ...tagsOf(entry) }
}

export function taggedState ({ state, incarnation }: StoredState, position: string): TaggedWorkflowState {
  return { ...state, etag: tagOf(incarnation, state.version), position }
}

export function indexKeyOf (body: ConversationBody): IndexKey {
  return { updatedAt: Date.parse(body.updatedAt), id: body.id }
}

/** A message of the entry, or MESSAGE_NOT_FOUND. */
export function messageOf (entry: Entry, messageId: string): Message {
  const message = entry.log.find(messageId)
  if (message === undefined) throw new MessageNotFoundError(messageId)
  return message
}

/** Records an event of the entry's current version for its followers. */
export function emitOn (entry: Entry, type: EventType, fields: string): void {
  entry.events.emit(type, entry.body.version, fields)
}

/** The entry's version with its messages through one (all without it) and its live workflow state: what a fork copies. */
export function snapshotOf (entry: Entry, throughMessageId: string | undefined, now: number): ConversationSnapshot {
  if (throughMessageId !== undefined) messageOf(entry, throughMessageId)
  const { messages, tokens } = entry.log.through(throughMessageId)
  const state = liveState(entry, now)?.state
  const conversation = { ...entry.body, messages, messageCount: messages.length, etag: tagOfEntry(entry) }
  return state === undefined ? { conversation, tokens } : { conversation, tokens, workflowState: state }
}
