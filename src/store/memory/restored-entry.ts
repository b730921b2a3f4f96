import type { TokenCounter } from '../../tokens.js'
import {
  buildConversation, buildWorkflowState, expiryOf, newIncarnation, ttlSecondsOf, writeTime, type ConversationBody, type StoreLimits
} from '../conversation-rules.js'
import type { RestoreRecord } from '../types.js'
import type { Entry } from './entries.js'
import { MessageLog } from './message-log.js'
import { MemoryEventLog } from './event-log.js'
import { storedState } from './workflow-states.js'

export interface RestoreContext {
  now: number
  limits: StoreLimits
  countTokens: TokenCounter
  /** What the restore replaces, if anything. */
  previous: Entry | undefined
  eventsRetained: number
}

/**
 * The entry a fork or an import writes: a new incarnation at version 1 (no tag of what it
 * replaces matches it), with its messages, their token counts when known, and its workflow
 * state. A create keeps the record's updatedAt (never later than now); either way it lives
 * its whole TTL from now.
 */
export function restoredEntry (id: string, record: RestoreRecord, { now, limits, countTokens, previous, eventsRetained }: RestoreContext): Entry {
  const writeMs = previous === undefined
    ? Math.min(record.updatedAt === undefined ? now : Date.parse(record.updatedAt), now)
    : writeTime(now, previous.body.updatedAt)
  const { messages, messageCount: _count, ...built } = buildConversation(id, record.fields, writeMs, limits)
  const expiresAt = expiryOf(Math.max(writeMs, now), ttlSecondsOf(built, limits))
  const body: ConversationBody = {
    ...built,
    expiresAt,
    ...(record.createdAt === undefined ? {} : { createdAt: new Date(record.createdAt).toISOString() }),
    ...(record.forkedFrom === undefined ? {} : { forkedFrom: record.forkedFrom })
  }
  const incarnation = newIncarnation()
  const entry: Entry = {
    body,
    incarnation,
    log: new MessageLog(countTokens, messages, record.tokens),
    bodyBytes: JSON.stringify(body).length,
    events: new MemoryEventLog(id, incarnation, eventsRetained)
  }
  if (record.workflowState !== undefined) {
    entry.workflowState = storedState({ ...buildWorkflowState(id, record.workflowState, writeMs, ttlSecondsOf(body, limits)), expiresAt })
  }
  return entry
}
