import type {
  AppendResult, Conversation, ConversationFields, ConversationSummary, ConversationView, ForkedFrom, Message, MessageInput,
  MessageWithTokens, PatchConversationBody, PatchMessageBody, RewindResult, WorkflowState, WorkflowStateBody
} from '../schemas.js'
import type { Delta, DeltaResult } from './stream-rules.js'
import type { FeedEvent, Following } from './events.js'

/** Conditions from `If-Match` / `If-None-Match`, checked atomically with the write. */
export interface Preconditions {
  /** `*` (any existing version) or the entity tags (unquoted) the client accepts. */
  ifMatch?: '*' | string[]
  /** Create only: fail when the conversation exists. */
  ifNoneMatch?: true
}

/**
 * The conversations a caller may reach: those of its tenants, and only one user's when it
 * acts for a signed-in user (a delegated token). A conversation out of reach reads as
 * absent, and a write to it fails as a write to nothing would.
 */
export interface Reach {
  /** '*': every tenant. */
  tenants: '*' | ReadonlySet<string>
  userId?: string
}

/** The reach of a caller without limits (API_KEYS, or authentication turned off). */
export const EVERYWHERE: Reach = Object.freeze({ tenants: '*' })

export interface ListOptions {
  limit: number
  cursor?: ListCursor
  tenantId?: string
  view: 'full' | 'summary'
}

/** Position after the last item of a page, in (updatedAt desc, id desc) order. */
export interface ListCursor {
  updatedAt: number
  id: string
}

export interface ConversationPage {
  items: Array<Conversation | ConversationSummary>
  nextCursor: ListCursor | null
  /** The position of the user's feed that the page reflects at least: its Last-Event-ID. */
  position: string
}

/**
 * The entity tag of the version a store answered with: unique across incarnations, so a
 * tag from before a delete never matches what is created after it (see `tagOf`).
 */
export interface Tagged {
  etag: string
  /** The position of the conversation's newest event that the answer reflects: its Last-Event-ID (events.ts). */
  position: string
}

export type TaggedConversation = Conversation & Tagged
export type TaggedView = ConversationView & Tagged

/** Which messages a conversation read brings: all, none (a summary), or the newest N. */
export type MessageSelection = 'all' | 'none' | { last: number }

/** Where a message page goes on: after this message, in the page's order. */
export interface MessageCursor {
  /** The incarnation of the conversation the page began on; another one is a bad cursor. */
  incarnation: string
  /** The position of the last message of the previous page in append order. */
  seq: number
}

export interface MessageQuery {
  limit: number
  order: 'asc' | 'desc'
  after?: MessageCursor
  /** With order desc: the newest messages whose tokens fit, contiguous. */
  maxTokens?: number
}

/**
 * What an append also answers, read in the same atomic step (CONTRACT-NOTES §16): the
 * newest messages whose tokens fit, or the newest N.
 */
export type WindowRequest = { maxTokens: number } | { last: number }

/** The most messages a token window holds, as for a read with maxTokens. */
export const MAX_WINDOW_MESSAGES = 1000

export interface MessagePage {
  items: MessageWithTokens[]
  next: MessageCursor | null
  messageCount: number
  totalTokens?: number
}
export type TaggedWorkflowState = WorkflowState & Tagged

export interface PutResult {
  conversation: TaggedConversation
  created: boolean
}

/**
 * One version of a conversation with everything it owns, read atomically: what a fork
 * copies and an export writes. `tokens` are its messages' counts, in order.
 */
export interface ConversationSnapshot {
  conversation: Conversation & { etag: string }
  tokens: number[]
  workflowState?: WorkflowState
}

/**
 * A whole conversation written at once, as a fork or an import writes it: a new incarnation
 * with its messages (ids and times kept), its workflow state, and where it came from.
 * `updatedAt` (never later than now) is kept when the write creates the conversation, so an
 * import keeps the order of a user's list; it lives its whole TTL from the write all the same.
 * `tokens`, when given, are the messages' counts (a fork's, from the same service).
 */
export interface RestoreRecord {
  fields: ConversationFields
  createdAt?: string
  updatedAt?: string
  forkedFrom?: ForkedFrom
  workflowState?: WorkflowStateBody
  tokens?: number[]
}

/** create: fails when the id exists; skip: leaves an existing one; replace: replaces it (same owner only). */
export type RestoreMode = 'create' | 'skip' | 'replace'

export type RestoreResult = { outcome: 'created' | 'replaced', conversation: TaggedConversation } | { outcome: 'skipped' }

/** Figures for the metrics; each backend reports what it has. */
export interface StoreStats {
  conversations?: number
  /** Stored size of the memory backend's conversations, and its bound. */
  bytes?: number
  maxBytes?: number
  evictions?: number
  connection?: string
  /** What the cache of validated views holds (view-cache.ts), in the bytes its bound counts. */
  viewCacheBytes?: number
  /** What the cache of validated stored messages holds (Redis: validated-messages.ts), likewise. */
  messageCacheBytes?: number
}

export interface StoreHealth {
  latencyMs: number
  [detail: string]: unknown
}

/**
 * The storage contract both backends honour. Every method is atomic for one
 * conversation, and every failure to reach the backend rejects with a
 * StoreUnavailableError so that the API answers 503. `reach` (EVERYWHERE when omitted) is
 * checked atomically with the operation, in the same round trip.
 */
export interface ConversationStore {
  readonly backend: 'memory' | 'redis'
  create (id: string, fields: ConversationFields): Promise<TaggedConversation>
  get (id: string, messages?: MessageSelection, reach?: Reach): Promise<TaggedView | undefined>
  put (id: string, fields: ConversationFields, preconditions: Preconditions, reach?: Reach): Promise<PutResult>
  patch (id: string, patch: PatchConversationBody, preconditions: Preconditions, reach?: Reach): Promise<TaggedConversation>
  delete (id: string, preconditions: Preconditions, reach?: Reach): Promise<void>
  appendMessages (id: string, messages: MessageInput[], preconditions: Preconditions, reach?: Reach, window?: WindowRequest): Promise<AppendResult & Tagged>
  listByUser (userId: string, options: ListOptions, reach?: Reach): Promise<ConversationPage>
  listMessages (id: string, query: MessageQuery, reach?: Reach): Promise<MessagePage & { position: string }>
  /**
   * Follows a conversation's events after a position (or from the next change without one):
   * the kept events after it, or one `reset` when it is older than what is kept, then each
   * new event, until the Following is closed. 404 when the conversation is not there. The
   * listener gets null when the feed cannot go on (the store failed): the follower resumes later.
   */
  follow (id: string, after: string | undefined, reach: Reach, listener: (event: FeedEvent | null) => void): Promise<Following>
  /**
   * Follows a user's feed the same way: one event per write of one of the user's
   * conversations, deltas excepted (conversation.created, .updated, .deleted). The caller
   * applies reach to each event.
   */
  followUser (userId: string, after: string | undefined, listener: (event: FeedEvent | null) => void): Promise<Following>
  getMessage (id: string, messageId: string, reach?: Reach): Promise<{ message: Message, position: string }>
  patchMessage (id: string, messageId: string, patch: PatchMessageBody, preconditions: Preconditions, reach?: Reach): Promise<{ message: Message } & Tagged>
  deleteMessage (id: string, messageId: string, preconditions: Preconditions, reach?: Reach): Promise<Tagged>
  /** Extends an in_progress message by one numbered delta: a write to its conversation (stream-rules.ts). */
  appendDelta (id: string, messageId: string, delta: Delta, preconditions: Preconditions, reach?: Reach): Promise<DeltaResult & Tagged>
  /** Deletes every message after one, in one write (nothing changes when none follows it). */
  rewindMessages (id: string, afterMessageId: string, preconditions: Preconditions, reach?: Reach): Promise<RewindResult & Tagged>
  deleteByUser (userId: string, reach?: Reach): Promise<number>
  /** The conversation with its messages through `throughMessageId` (all without it), and its workflow state. */
  snapshot (id: string, throughMessageId?: string, reach?: Reach): Promise<ConversationSnapshot | undefined>
  /**
   * Writes a whole conversation atomically; a user's cap (maxConversationsPerUser) then
   * applies. A replace of a conversation out of reach fails as one of none would.
   */
  restore (id: string, record: RestoreRecord, mode: RestoreMode, reach?: Reach): Promise<RestoreResult>
  getWorkflowState (id: string, reach?: Reach): Promise<TaggedWorkflowState>
  putWorkflowState (id: string, state: WorkflowStateBody, preconditions: Preconditions, reach?: Reach): Promise<{ state: TaggedWorkflowState, created: boolean }>
  deleteWorkflowState (id: string, preconditions: Preconditions, reach?: Reach): Promise<{ position: string }>
  ping (): Promise<StoreHealth>
  stats (): StoreStats
  close (): Promise<void>
}
