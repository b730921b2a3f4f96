import { WorkflowStateNotFoundError } from '../../errors.js'
import type { WorkflowState, WorkflowStateBody } from '../../schemas.js'
import { buildWorkflowState, checkPreconditions, newIncarnation, tagOf, ttlSecondsOf, writeTime, type StoreLimits } from '../conversation-rules.js'
import type { Preconditions } from '../types.js'
import type { Entry, StoredState } from './entries.js'

// The rules of a conversation's workflow state in the memory backend, on the entry that
// holds it; the store saves what they answer.

export function storedState (state: WorkflowState, incarnation = newIncarnation()): StoredState {
  return { state, incarnation, bytes: JSON.stringify(state).length }
}

/** The entry's workflow state while it has not expired. */
export function liveState (entry: Entry, now: number): StoredState | undefined {
  const stored = entry.workflowState
  return stored !== undefined && Date.parse(stored.state.expiresAt) > now ? stored : undefined
}

/** The entry's live workflow state, or WORKFLOW_STATE_NOT_FOUND. */
export function existingState (id: string, entry: Entry, now: number): StoredState {
  const stored = liveState(entry, now)
  if (stored === undefined) throw new WorkflowStateNotFoundError(id)
  return stored
}

/** The entry without its workflow state, once DELETE's preconditions hold (WORKFLOW_STATE_NOT_FOUND without one). */
export function withoutState (id: string, entry: Entry, preconditions: Preconditions, now: number): Entry {
  const current = existingState(id, entry, now)
  checkPreconditions(tagOf(current.incarnation, current.state.version), preconditions)
  const { workflowState: _deleted, ...rest } = entry
  return rest
}

/**
 * What a PUT of the state stores, once its preconditions hold: the next version, living as
 * long as its conversation would after a write (the conversation's TTL).
 */
export function nextState (
  id: string, entry: Entry, body: WorkflowStateBody, preconditions: Preconditions, now: number, limits: StoreLimits
): { stored: StoredState, created: boolean } {
  const previous = liveState(entry, now)
  checkPreconditions(previous === undefined ? undefined : tagOf(previous.incarnation, previous.state.version), preconditions)
  const writeMs = writeTime(now, previous?.state.updatedAt)
  const state = buildWorkflowState(id, body, writeMs, ttlSecondsOf(entry.body, limits), previous?.state)
  return { stored: storedState(state, previous?.incarnation), created: previous === undefined }
}
