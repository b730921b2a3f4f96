import type { Conversation, ConversationSummary, WorkflowState } from '../../schemas.js'
import { tagOf, type ConversationBody } from '../conversation-rules.js'
import type { MessageLog } from './message-log.js'
import type { IndexKey } from './user-index.js'
import type { TaggedConversation, TaggedWorkflowState } from '../types.js'

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
}

export const sizeOf = (entry: Entry): number => entry.bodyBytes + entry.log.bytes + (entry.workflowState?.bytes ?? 0)

export function tagOfEntry (entry: Entry): string {
  return tagOf(entry.incarnation, entry.body.version)
}

export function summaryOf (entry: Entry): ConversationSummary {
  return { ...entry.body, messageCount: entry.log.count }
}

export function viewOf (entry: Entry): Conversation {
  return { ...entry.body, messages: entry.log.all(), messageCount: entry.log.count }
}

export function tagged (entry: Entry): TaggedConversation {
  return { ...viewOf(entry), etag: tagOfEntry(entry) }
}

export function taggedState ({ state, incarnation }: StoredState): TaggedWorkflowState {
  return { ...state, etag: tagOf(incarnation, state.version) }
}

export function indexKeyOf (body: ConversationBody): IndexKey {
  return { updatedAt: Date.parse(body.updatedAt), id: body.id }
}
