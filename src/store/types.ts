import type {
  AppendResult, Conversation, ConversationFields, ConversationSummary, MessageInput,
  PatchConversationBody, WorkflowState, WorkflowStateBody
} from '../schemas.js'

/** Conditions from `If-Match` / `If-None-Match`, checked atomically with the write. */
export interface Preconditions {
  /** `*` (any existing version) or the entity tags (unquoted) the client accepts. */
  ifMatch?: '*' | string[]
  /** Create only: fail when the conversation exists. */
  ifNoneMatch?: true
}

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
}

/**
 * The entity tag of the version a store answered with: unique across incarnations, so a
 * tag from before a delete never matches what is created after it (see `tagOf`).
 */
export interface Tagged { etag: string }

export type TaggedConversation = Conversation & Tagged
export type TaggedWorkflowState = WorkflowState & Tagged

export interface PutResult {
  conversation: TaggedConversation
  created: boolean
}

/** Figures for the metrics; each backend reports what it has. */
export interface StoreStats {
  conversations?: number
  /** Stored size of the memory backend's conversations. */
  bytes?: number
  evictions?: number
  connection?: string
}

export interface StoreHealth {
  latencyMs: number
  [detail: string]: unknown
}

/**
 * The storage contract both backends honour. Every method is atomic for one
 * conversation, and every failure to reach the backend rejects with a
 * StoreUnavailableError so that the API answers 503.
 */
export interface ConversationStore {
  readonly backend: 'memory' | 'redis'
  create (id: string, fields: ConversationFields): Promise<TaggedConversation>
  get (id: string): Promise<TaggedConversation | undefined>
  put (id: string, fields: ConversationFields, preconditions: Preconditions): Promise<PutResult>
  patch (id: string, patch: PatchConversationBody, preconditions: Preconditions): Promise<TaggedConversation>
  delete (id: string, preconditions: Preconditions): Promise<void>
  appendMessages (id: string, messages: MessageInput[], preconditions: Preconditions): Promise<AppendResult & Tagged>
  listByUser (userId: string, options: ListOptions): Promise<ConversationPage>
  deleteByUser (userId: string): Promise<number>
  getWorkflowState (id: string): Promise<TaggedWorkflowState>
  putWorkflowState (id: string, state: WorkflowStateBody, preconditions: Preconditions): Promise<{ state: TaggedWorkflowState, created: boolean }>
  deleteWorkflowState (id: string, preconditions: Preconditions): Promise<void>
  ping (): Promise<StoreHealth>
  stats (): StoreStats
  close (): Promise<void>
}
