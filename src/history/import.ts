import type { Caller } from '../auth/caller.js'
import { assertMayPlace } from '../auth/caller.js'
import { InvalidRequestError } from '../errors.js'
import { assertTtlWithin } from '../store/conversation-rules.js'
import { settledCopy } from '../store/stream-rules.js'
import { ImportLineSchema, MAX_REPORTED_FAILURES, type ImportResult } from '../history-schemas.js'
import type { ConversationStore, RestoreMode, RestoreRecord } from '../store/types.js'
import { workflowStateBody } from './fork.js'

export interface ImportOptions {
  store: ConversationStore
  userId: string
  caller: Caller
  mode: RestoreMode
  maxTtlSeconds: number
}

type Outcome = 'imported' | 'skipped'

/**
 * Writes an import's lines, one conversation each, one at a time (so the body is read only
 * as fast as the store writes it). A line that is not a valid conversation of this user, or
 * that its store refuses (4xx), is reported and the next one goes on; a store that fails
 * (5xx) ends the import with that error, and what was written stays (importing again is
 * idempotent).
 */
export async function importLines (lines: AsyncIterable<string>, options: ImportOptions): Promise<ImportResult> {
  const result: ImportResult = { imported: 0, skipped: 0, failed: [], failedCount: 0 }
  let line = 0
  for await (const text of lines) {
    line++
    if (text.trim() === '') continue
    try {
      const outcome = await importLine(text, options)
      if (outcome !== undefined) result[outcome]++
    } catch (error) {
      const { statusCode, code, message } = error as { statusCode?: number, code?: string, message: string }
      if (statusCode === undefined || statusCode >= 500) throw error
      result.failedCount++
      if (result.failed.length < MAX_REPORTED_FAILURES) result.failed.push({ line, code: code ?? 'FST_ERR_VALIDATION', message })
    }
  }
  return result
}

async function importLine (text: string, { store, userId, caller, mode, maxTtlSeconds }: ImportOptions): Promise<Outcome | undefined> {
  const parsed = ImportLineSchema.safeParse(parseJson(text))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidRequestError(`line${issue === undefined ? '' : `/${issue.path.map(String).join('/')}`}: ${issue?.message ?? 'invalid'}`)
  }
  if (parsed.data.type === 'end') return undefined
  const { conversation, workflowState } = parsed.data
  const { id, createdAt, updatedAt, forkedFrom, expiresAt: _e, version: _v, messageCount: _m, ...fields } = conversation
  if (fields.userId !== userId) throw new InvalidRequestError('line/conversation/userId must be the user the import is for')
  assertTtlWithin(fields, maxTtlSeconds, 'line/conversation/ttlSeconds')
  assertMayPlace(caller, fields)
  // An export taken while a message streamed holds it in_progress: it arrives ended.
  const record: RestoreRecord = {
    fields: { ...fields, messages: fields.messages.map((message) => settledCopy(message, 'imported')) },
    ...(createdAt === undefined ? {} : { createdAt }),
    ...(updatedAt === undefined ? {} : { updatedAt }),
    ...(forkedFrom === undefined ? {} : { forkedFrom }),
    ...(workflowState === undefined || workflowState === null ? {} : { workflowState: workflowStateBody(workflowState) })
  }
  const { outcome } = await store.restore(id, record, mode, caller.reach)
  return outcome === 'skipped' ? 'skipped' : 'imported'
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new InvalidRequestError('line is not JSON')
  }
}
