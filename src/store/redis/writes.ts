import type { Cluster, Redis } from 'ioredis'
import { ConversationExistsError, ConversationNotFoundError, PreconditionFailedError, UserMismatchError } from '../../errors.js'
import type { Conversation, ConversationFields } from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import { assertMessageLimit, assertNoStreams, newIncarnation, tagOf, toMessage, toSummary, ttlSecondsOf, type StoreLimits } from '../conversation-rules.js'
import { eventFields, positionOf } from '../events.js'
import type { UserFeedEvent } from './feeds.js'
import { ifMatchArg, ownTtlArg, reachArgs, runScript } from './commands.js'
import { iso } from './records.js'
import type { CreateScript } from './user-cap.js'
import type { Preconditions, PutResult, Reach, RestoreMode, RestoreRecord, RestoreResult, TaggedConversation } from '../types.js'

export interface RedisWritesOptions {
  client: Redis | Cluster
  limits: StoreLimits
  countTokens: TokenCounter
  clock: () => number
  /** Adds (NX) or moves (GT) the owner's index entry; a move carries the write's event to the owner's feed. */
  touchIndex: (mode: 'NX' | 'GT', userId: string, id: string, score: number, expiresAt: number, event?: UserFeedEvent) => Promise<void>
  /** The create script for a conversation of this user, with the per-user cap (user-cap.ts). */
  createScript: (name: 'csWriteConversation' | 'csRestoreConversation', id: string, userId: string) => CreateScript
  /** Tells the appends who owns a conversation (one round trip per append, see appends.ts). */
  knowOwner: (id: string, userId: string) => void
  /** The per-user cap's step after a create, where the script did not take it (user-cap.ts). */
  afterCreate: (userId: string) => Promise<void>
}

/**
 * The writes of whole conversations, which may create one: create and PUT
 * (write-conversation.lua), fork and import (restore-conversation.lua). Each is one script
 * on the conversation's slot, between two steps on its owner's index, in the order that no
 * crash can turn into a hidden conversation: the entry first (NX, so an existing one does
 * not move and a refused write moves nothing), then the script, then the move (GT). A
 * crash after the first step leaves an entry that points at nothing, which lists skip and
 * later prune.
 */
export class RedisWrites {
  readonly #options: RedisWritesOptions

  constructor (options: RedisWritesOptions) {
    this.#options = options
  }

  async write (mode: 'create' | 'put', id: string, fields: ConversationFields, preconditions: Preconditions, reach: Reach): Promise<PutResult> {
    const { client, limits, clock, countTokens, touchIndex, createScript, knowOwner, afterCreate } = this.#options
    assertMessageLimit(fields.messages.length, limits)
    assertNoStreams(fields.messages)
    const now = clock()
    const { userId, messages: inputs, ...body } = fields
    const nowIso = iso(now)
    const messages = inputs.map((input) => toMessage(input, nowIso))
    // The index entry comes first: a crash after it leaves an entry that points at
    // nothing (skipped, later pruned); the other order could hide a live conversation.
    // NX leaves an existing entry where it is, so a rejected write moves nothing.
    const ttlMs = ttlSecondsOf(body, limits) * 1000
    if (preconditions.ifMatch === undefined) await touchIndex('NX', userId, id, now, now + ttlMs)
    const script = createScript('csWriteConversation', id, userId)
    const reply = await runScript(client, script.name, script.keys,
      mode, now, ttlMs, ifMatchArg(preconditions), preconditions.ifNoneMatch === true ? '1' : '', userId,
      JSON.stringify(body), newIncarnation(), body.tenantId, ownTtlArg(body), messages.length, ...messages.map((message) => message.id),
      ...messages.map((message) => JSON.stringify(message)), ...messages.map(countTokens), script.cap, ...reachArgs(reach))
    if (reply[0] === 'EXISTS') throw new ConversationExistsError(id)
    if (reply[0] === 'OUT_OF_REACH') throw new ConversationNotFoundError(id)
    if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
    if (reply[0] === 'USER_MISMATCH') throw new UserMismatchError()
    const [, version, updatedAt, expiresAt, createdAt, created, incarnation, lastEvent] = reply as [string, number, number, number, number, number, string, number]
    knowOwner(id, userId)
    const times = { createdAt: iso(createdAt), updatedAt: iso(updatedAt), expiresAt: iso(expiresAt) }
    const conversation: TaggedConversation = {
      ...body, userId, id, messages, messageCount: messages.length, ...times, version, etag: tagOf(incarnation, version), position: positionOf(incarnation, lastEvent)
    }
    await touchIndex('GT', userId, id, updatedAt, expiresAt, userEvent(created === 1, conversation))
    if (created === 1) await afterCreate(userId)
    return { conversation, created: created === 1 }
  }

  async restore (id: string, record: RestoreRecord, mode: RestoreMode, reach: Reach): Promise<RestoreResult> {
    const { client, limits, clock, countTokens, touchIndex, createScript, knowOwner, afterCreate } = this.#options
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
    const script = createScript('csRestoreConversation', id, userId)
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
    knowOwner(id, userId)
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
      etag: tagOf(incarnation, 1),
      // A new incarnation: no event yet.
      position: positionOf(incarnation, 0)
    }
    await touchIndex('GT', userId, id, writtenAt, expiresAt, userEvent(replaced === 0, conversation))
    if (replaced === 0) await afterCreate(userId)
    return { outcome: replaced === 1 ? 'replaced' : 'created', conversation }
  }
}

/** The event of a whole-conversation write on its owner's feed. */
function userEvent (created: boolean, conversation: Conversation): UserFeedEvent {
  return { type: created ? 'conversation.created' : 'conversation.updated', version: conversation.version, data: eventFields.conversation(toSummary(conversation)) }
}
