import { randomBytes, randomUUID } from 'node:crypto'
import { InvalidRequestError, PreconditionFailedError, TooManyMessagesError, UserMismatchError } from '../errors.js'
import type {
  Conversation, ConversationFields, ConversationSummary, Message, MessageInput, MessageWithTokens, PatchConversationBody, PatchMessageBody,
  WorkflowState, WorkflowStateBody
} from '../schemas.js'
import type { StreamLimits } from './stream-rules.js'
import type { Preconditions, Reach } from './types.js'

// The rules every backend applies in the same way, kept free of I/O so that both
// backends share them and tests can check them directly.

export interface StoreLimits {
  ttlSeconds: number
  maxMessagesPerConversation: number
  /** A create past it deletes the user's least recently updated conversations; no cap when unset. */
  maxConversationsPerUser?: number
  /** Streamed messages' idle timeout and text bound; DEFAULT_STREAM_LIMITS when unset. */
  streams?: StreamLimits
}

/** A new incarnation: made when a record is created, kept until it is deleted. */
export function newIncarnation (): string {
  return randomBytes(8).toString('base64url')
}

/**
 * The entity tag of a version of one incarnation. The Redis scripts build the same string
 * (redis/lua/), so a tag compares equal whichever side made it.
 */
export function tagOf (incarnation: string, version: number): string {
  return `${incarnation}.${version}`
}

/** Throws PRECONDITION_FAILED unless the current tag satisfies the headers. */
export function checkPreconditions (currentTag: string | undefined, preconditions: Preconditions): void {
  const { ifMatch, ifNoneMatch } = preconditions
  if (ifNoneMatch === true && currentTag !== undefined) throw new PreconditionFailedError()
  if (ifMatch === undefined) return
  const matches = currentTag !== undefined && (ifMatch === '*' || ifMatch.includes(currentTag))
  if (!matches) throw new PreconditionFailedError()
}

/** Whether the caller may act for this user (and follow the user's feed): a delegated token acts for its own user only. */
export function canFollowUser (reach: Reach, userId: string): boolean {
  return reach.userId === undefined || reach.userId === userId
}

/** Whether the caller's tenants include this one. */
export function canReachTenant (reach: Reach, tenantId: string): boolean {
  return reach.tenants === '*' || reach.tenants.has(tenantId)
}

/** Whether a caller with this reach may see the conversation (see Reach). */
export function canReach (reach: Reach, { userId, tenantId }: { userId: string, tenantId: string }): boolean {
  return canFollowUser(reach, userId) && canReachTenant(reach, tenantId)
}

/** The write time: never earlier than the previous write, so updatedAt never goes backwards. */
export function writeTime (nowMs: number, previousUpdatedAt?: string): number {
  return previousUpdatedAt === undefined ? nowMs : Math.max(nowMs, Date.parse(previousUpdatedAt))
}

/** How long a conversation lives after a write: its own ttlSeconds, else the service's. */
export function ttlSecondsOf (conversation: { ttlSeconds?: number | undefined }, limits: StoreLimits): number {
  return conversation.ttlSeconds ?? limits.ttlSeconds
}

/**
 * A conversation's own TTL may not pass the operator's bound (MAX_TTL_SECONDS): 400, naming
 * `field`, before anything is written.
 */
export function assertTtlWithin ({ ttlSeconds }: { ttlSeconds?: number | null | undefined }, maxTtlSeconds: number, field: string): void {
  if (typeof ttlSeconds === 'number' && ttlSeconds > maxTtlSeconds) throw new InvalidRequestError(`${field} must be at most ${maxTtlSeconds}`)
}

export function expiryOf (writeMs: number, ttlSeconds: number): string {
  return new Date(writeMs + ttlSeconds * 1000).toISOString()
}

export function toMessage (input: MessageInput, nowIso: string): Message {
  const { createdAt, id, status = 'completed', ...rest } = input
  const message: Message = {
    id: id ?? randomUUID(),
    ...rest,
    createdAt: createdAt === undefined ? nowIso : new Date(createdAt).toISOString(),
    status
  }
  return status === 'in_progress' ? withTextLast(message) : message
}

/**
 * A copy of a message with its token count. `{ ...message, tokens }` takes V8's slow path
 * (about 1.5 µs a message, measured on this machine); a copy by Object.assign with the
 * property added after is about 0.1 µs, and a window answers dozens of messages.
 */
export function withTokens (message: Message, tokens: number): MessageWithTokens {
  const copy: MessageWithTokens = Object.assign({}, message)
  copy.tokens = tokens
  return copy
}

/**
 * A streamed message keeps its text as its last member, so that a Redis script can extend
 * the stored JSON in place without decoding it (redis/lua/append-delta.lua).
 */
export function withTextLast (message: Message): Message {
  const { text = '', ...rest } = message
  return { ...rest, text }
}

export function assertMessageLimit (count: number, limits: StoreLimits): void {
  if (count > limits.maxMessagesPerConversation) throw new TooManyMessagesError(limits.maxMessagesPerConversation)
}

/** A stream starts with an append: a create or a replacement holds finished messages only. */
export function assertNoStreams (messages: Array<{ status?: string | undefined }>): void {
  const index = messages.findIndex((message) => message.status === 'in_progress')
  if (index !== -1) throw new InvalidRequestError(`body/messages/${index}/status: in_progress starts a streamed message, which only an append can do`)
}

/**
 * Builds the stored conversation for a create or a full replacement. A replacement keeps
 * `createdAt`, bumps `version` and may not change `userId`.
 */
export function buildConversation (
  id: string, fields: ConversationFields, writeMs: number, limits: StoreLimits, previous?: ConversationBody
): Conversation {
  if (previous !== undefined && previous.userId !== fields.userId) throw new UserMismatchError()
  assertMessageLimit(fields.messages.length, limits)
  assertNoStreams(fields.messages)
  const nowIso = new Date(writeMs).toISOString()
  return {
    ...fields,
    id,
    messages: fields.messages.map((message) => toMessage(message, nowIso)),
    messageCount: fields.messages.length,
    createdAt: previous?.createdAt ?? nowIso,
    updatedAt: nowIso,
    expiresAt: expiryOf(writeMs, ttlSecondsOf(fields, limits)),
    version: (previous?.version ?? 0) + 1
  }
}

type JsonObject = Record<string, unknown>

function isObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** RFC 7396 JSON merge patch: null removes a member, objects merge recursively. */
export function mergePatch (target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch
  const result: JsonObject = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else if (value !== undefined) result[key] = mergePatch(result[key], value)
  }
  return result
}

/** A conversation without its messages: what a write to the conversation itself changes. */
export type ConversationBody = Omit<Conversation, 'messages' | 'messageCount'>

export function patchConversation (
  current: ConversationBody, patch: PatchConversationBody, writeMs: number, limits: StoreLimits
): ConversationBody {
  // The stamp uses the patched ttlSeconds: a PATCH may set it, or return to the default with null.
  const patched = mergePatch(current, patch) as ConversationBody
  return { ...patched, ...writeStamp(patched, writeMs, limits) }
}

/** What every write to a conversation moves: version, updatedAt and expiresAt. */
export function writeStamp (current: ConversationBody, writeMs: number, limits: StoreLimits): Pick<ConversationBody, 'version' | 'updatedAt' | 'expiresAt'> {
  return { updatedAt: new Date(writeMs).toISOString(), expiresAt: expiryOf(writeMs, ttlSecondsOf(current, limits)), version: current.version + 1 }
}

/** A message edit: a JSON merge patch of text, cardJson, cardId and metadata. */
export function patchMessage (current: Message, patch: PatchMessageBody): Message {
  return mergePatch(current, patch) as Message
}

/** Splits an append into the messages to add and the count skipped as already present. */
export function newMessages (
  existingIds: { has: (id: string) => boolean }, inputs: MessageInput[], nowIso: string
): { added: Message[], skipped: number } {
  const added: Message[] = []
  const seen = new Set<string>()
  for (const input of inputs) {
    const message = toMessage(input, nowIso)
    if (existingIds.has(message.id) || seen.has(message.id)) continue
    seen.add(message.id)
    added.push(message)
  }
  return { added, skipped: inputs.length - added.length }
}

/** The summary view: the conversation without its messages. */
export function toSummary (conversation: Conversation | ConversationSummary): ConversationSummary {
  const { messages: _messages, ...rest } = conversation as Conversation
  return rest
}

/** Sort order of every list: updatedAt descending, then id descending. */
export function compareListOrder (a: { updatedAt: number, id: string }, b: { updatedAt: number, id: string }): number {
  if (a.updatedAt !== b.updatedAt) return b.updatedAt - a.updatedAt
  if (a.id === b.id) return 0
  return a.id < b.id ? 1 : -1
}

export function buildWorkflowState (
  conversationId: string, body: WorkflowStateBody, writeMs: number, ttlSeconds: number, previous?: WorkflowState
): WorkflowState {
  return {
    ...body,
    conversationId,
    version: (previous?.version ?? 0) + 1,
    updatedAt: new Date(writeMs).toISOString(),
    expiresAt: expiryOf(writeMs, ttlSeconds)
  }
}
