import type { ForkBody } from '../history-schemas.js'
import type { ConversationFields, WorkflowState, WorkflowStateBody } from '../schemas.js'
import { settledCopy } from '../store/stream-rules.js'
import type { ConversationSnapshot, RestoreRecord } from '../store/types.js'

/**
 * What a fork writes: the source's snapshot (its messages through the one asked for, their
 * token counts, its metadata and workflow state) under a new owner or title when asked,
 * and where it came from. A message still streaming is copied as incomplete (`forked`). The fork's own times, version and ETag are made by its write.
 */
export function forkRecord ({ conversation, tokens, workflowState }: ConversationSnapshot, { userId, title }: ForkBody): RestoreRecord {
  const {
    id, userId: sourceUserId, title: sourceTitle, messages, createdAt: _c, updatedAt: _u, expiresAt: _e, version, messageCount: _m,
    forkedFrom: _f, etag: _t, ...kept
  } = conversation
  const forkTitle = title ?? sourceTitle
  const copied = messages.map((message) => settledCopy(message, 'forked'))
  const fields: ConversationFields = { ...kept, userId: userId ?? sourceUserId, messages: copied, ...(forkTitle === undefined ? {} : { title: forkTitle }) }
  const record: RestoreRecord = {
    fields,
    tokens,
    forkedFrom: { conversationId: id, messageId: messages.at(-1)?.id ?? null, version }
  }
  return workflowState === undefined ? record : { ...record, workflowState: workflowStateBody(workflowState) }
}

/** A workflow state (stored, or an import's) without what its store makes on each write. */
export function workflowStateBody (state: WorkflowStateBody & Partial<WorkflowState>): WorkflowStateBody {
  const { conversationId: _id, version: _v, updatedAt: _u, expiresAt: _e, ...body } = state
  return body
}
