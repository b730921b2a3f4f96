import type { Cluster, Redis } from 'ioredis'
import { ConversationExistsError, ConversationNotFoundError, MessageNotFoundError, UserMismatchError } from '../../errors.js'
import type { TokenCounter } from '../../tokens.js'
import { assertMessageLimit, newIncarnation, tagOf, toMessage, ttlSecondsOf, type StoreLimits } from '../conversation-rules.js'
import { absent, ownTtlArg, reachArgs, runScript } from './commands.js'
import { conversationKeyList, conversationKeys } from './keys.js'
import { iso, parseWorkflowState, type RawConversation } from './records.js'
import type { CreateScript } from './user-cap.js'
import type { RedisViews } from './views.js'
import type { ConversationSnapshot, Reach, RestoreMode, RestoreRecord, RestoreResult } from '../types.js'

export interface RedisHistoryOptions {
  client: Redis | Cluster
  keyPrefix: string
  limits: StoreLimits
  countTokens: TokenCounter
  clock: () => number
  views: RedisViews
  migrate: (id: string) => Promise<void>
  /** Moves the owner's index entry (see `#write` in store.ts for the order). */
  touchIndex: (mode: 'NX' | 'GT', userId: string, id: string, score: number, expiresAt: number) => Promise<void>
  /** The restore script for a conversation of this user, with the per-user cap (user-cap.ts). */
  createScript: (name: 'csRestoreConversation', id: string, userId: string) => CreateScript
  corruptUnless: <T>(id: string, parse: () => T) => T
}

type SnapshotReply = [string, ...RawConversation, tokens: string, stateBody: string, stateVersion: string, stateUpdatedAt: string, stateExpiresAt: string]

/**
 * Whole conversations, read and written in one script each: a snapshot (what a fork copies
 * and an export writes) and a restore (a fork's or an import's write). A fork reads one
 * slot and writes another; each step is atomic, so no failure between them leaves a
 * partial conversation for anyone to see.
 */
export class RedisHistory {
  readonly #options: RedisHistoryOptions

  constructor (options: RedisHistoryOptions) {
    this.#options = options
  }

  async snapshot (id: string, throughMessageId: string | undefined, reach: Reach): Promise<ConversationSnapshot | undefined> {
    const { client, keyPrefix, views, corruptUnless } = this.#options
    for (;;) {
      const reply = await runScript(client, 'csReadSnapshot', conversationKeyList(conversationKeys(keyPrefix, id)),
        throughMessageId ?? '', ...reachArgs(reach))
      if (absent(reply)) return undefined
      if (reply[0] === 'MESSAGE_NOT_FOUND') throw new MessageNotFoundError(throughMessageId as string)
      // The layout of the release before: migrated once, then read again.
      if (reply[0] === 'LEGACY') { await this.#options.migrate(id); continue }
      const [, ...fields] = reply as SnapshotReply
      const raw = fields.slice(0, 10) as RawConversation
      const [tokens, stateBody, stateVersion, stateUpdatedAt, stateExpiresAt] = fields.slice(10) as string[]
      const conversation = { ...views.parse(id, raw, 'all'), etag: tagOf(raw[8], Number(raw[5])) }
      const snapshot: ConversationSnapshot = { conversation, tokens: tokens === '' ? [] : (tokens as string).split(',').map(Number) }
      if (stateVersion === '') return snapshot
      const state = corruptUnless(id, () =>
        parseWorkflowState(id, stateBody as string, Number(stateVersion), Number(stateUpdatedAt), Number(stateExpiresAt)))
      return { ...snapshot, workflowState: state }
    }
  }

  async restore (id: string, record: RestoreRecord, mode: RestoreMode, reach: Reach): Promise<RestoreResult> {
    const { client, limits, clock, countTokens, touchIndex } = this.#options
    assertMessageLimit(record.fields.messages.length, limits)
    const now = clock()
    const { userId, messages: inputs, ...writable } = record.fields
    const body = record.forkedFrom === undefined ? writable : { ...writable, forkedFrom: record.forkedFrom }
    const nowIso = iso(now)
    const messages = inputs.map((input) => toMessage(input, nowIso))
    const tokens = record.tokens ?? messages.map(countTokens)
    const ttlMs = ttlSecondsOf(body, limits) * 1000
    const incarnation = newIncarnation()
    const updatedAt = record.updatedAt === undefined ? now : Math.min(Date.parse(record.updatedAt), now)
    // The index entry first, as for any create: a crash after it leaves an entry that points
    // at nothing (skipped, later pruned), never a conversation its list cannot show.
    await touchIndex('NX', userId, id, updatedAt, now + ttlMs)
    const script = this.#options.createScript('csRestoreConversation', id, userId)
    const reply = await runScript(client, script.name, script.keys,
      mode, now, ttlMs, userId, JSON.stringify(body), incarnation, body.tenantId, ownTtlArg(body),
      record.createdAt === undefined ? '' : Date.parse(record.createdAt), updatedAt,
      record.workflowState === undefined ? '' : JSON.stringify(record.workflowState), newIncarnation(),
      messages.length, ...messages.map((message) => message.id), ...messages.map((message) => JSON.stringify(message)), ...tokens, script.cap, ...reachArgs(reach))
    if (reply[0] === 'EXISTS') throw new ConversationExistsError(id)
    if (reply[0] === 'OUT_OF_REACH') throw new ConversationNotFoundError(id)
    if (reply[0] === 'SKIPPED') return { outcome: 'skipped' }
    if (reply[0] === 'USER_MISMATCH') throw new UserMismatchError()
    const [, writtenAt, expiresAt, createdAt, replaced] = reply as [string, number, number, number, number]
    await touchIndex('GT', userId, id, writtenAt, expiresAt)
    const conversation = {
      ...body,
      id,
      userId,
      messages,
      messageCount: messages.length,
      createdAt: iso(createdAt),
      updatedAt: iso(writtenAt),
      expiresAt: iso(expiresAt),
      version: 1,
      etag: tagOf(incarnation, 1)
    }
    return { outcome: replaced === 1 ? 'replaced' : 'created', conversation }
  }
}
