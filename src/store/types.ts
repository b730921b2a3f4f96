import type {
  AppendResult, Conversation, ConversationFields, ConversationSummary, MessageInput,
  PatchConversationBody, WorkflowState, WorkflowStateBody
} from '../schemas.js'

/** Conditions from `If-Match` / `If-None-Match`, checked atomically with the write. */
export interface Preconditions {
  /** `*` (any existing version) or the versions the client accepts. */
  ifMatch?: '*' | number[]
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

export interface PutResult {
  conversation: Conversation
  created: boolean
}

/** Figures for the metrics; each backend reports what it has. */
export interface StoreStats {
  conversations?: number
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
  create (id: string, fields: ConversationFields): Promise<Conversation>
  get (id: string): Promise<Conversation | undefined>
  put (id: string, fields: ConversationFields, preconditions: Preconditions): Promise<PutResult>
  patch (id: string, patch: PatchConversationBody, preconditions: Preconditions): Promise<Conversation>
  delete (id: string, preconditions: Preconditions): Promise<void>
  appendMessages (id: string, messages: MessageInput[], preconditions: Preconditions): Promise<AppendResult>
  listByUser (userId: string, options: ListOptions): Promise<ConversationPage>
  deleteByUser (userId: string): Promise<number>
  getWorkflowState (id: string): Promise<WorkflowState>
  putWorkflowState (id: string, state: WorkflowStateBody, preconditions: Preconditions): Promise<{ state: WorkflowState, created: boolean }>
  deleteWorkflowState (id: string, preconditions: Preconditions): Promise<void>
  ping (): Promise<StoreHealth>
  stats (): StoreStats
  close (): Promise<void>
}
