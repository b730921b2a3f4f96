import type { z } from 'zod'
import type {
  Conversation, ConversationSummary, CreateConversationBodySchema, MessageInputSchema, MessagePageSchema, PatchConversationBodySchema,
  PatchMessageBodySchema, ReplaceConversationBodySchema, WorkflowState, WorkflowStateBodySchema
} from '../../../src/schemas.js'
import type { DeltaBodySchema, DeltaResultSchema } from '../../../src/stream-schemas.js'
import type { Positioned, Versioned } from './client-answers.js'

// The types of the client's calls: what they take and what they answer.

/** What callers send: schema inputs, so fields with a server default may be left out. */
export type CreateConversationInput = z.input<typeof CreateConversationBodySchema>
export type ReplaceConversationInput = z.input<typeof ReplaceConversationBodySchema>
export type ConversationPatch = z.input<typeof PatchConversationBodySchema>
export type NewMessage = z.input<typeof MessageInputSchema>
export type WorkflowStateInput = z.input<typeof WorkflowStateBodySchema>

/** A fork: its id (a UUID when absent), the last message to copy (all when absent), another owner (admin role), a title. */
export interface ForkOptions {
  id?: string
  messageId?: string
  userId?: string
  title?: string
}

/**
 * An entity tag as received (the `ETag` header, e.g. `"kX3….7"`), a result that carries one,
 * or `*` (any existing version). Tags are opaque: echo them, never build them.
 */
export type IfMatch = string | { etag: string }

export type ConversationResult = Versioned & { conversation: Conversation }
export type GetConversationResult =
  | (ConversationResult & Positioned & { notModified: false })
  | (Positioned & { notModified: true, etag: string })
export type WorkflowStateResult = Versioned & { state: WorkflowState }
export type View = 'full' | 'summary'
export type ListItem<V extends View> = V extends 'summary' ? ConversationSummary : Conversation

export interface ListOptions<V extends View = 'full'> {
  limit?: number
  cursor?: string
  view?: V
  tenantId?: string
}

export interface AppendOptions {
  ifMatch?: IfMatch
  /** Also answer the newest messages whose tokens fit in this many, newest first. */
  window?: number
  /** Also answer the newest this many messages, oldest first. */
  lastMessages?: number
}

export interface MessageListOptions {
  limit?: number
  order?: 'asc' | 'desc'
  cursor?: string
}

export type MessagePage = z.output<typeof MessagePageSchema>
export type MessagePatch = z.input<typeof PatchMessageBodySchema>

/** A numbered piece of a streamed message's text: seq starts at 1 and grows by 1. */
export type MessageDelta = z.input<typeof DeltaBodySchema>
/** What a delta answers: `textLength` is the text acknowledged so far, in characters (UTF-16 units). */
export type DeltaResult = z.output<typeof DeltaResultSchema>

/** The message a stream starts: a new message without status (streamMessage sets it); an id is generated when absent. */
export type StreamedMessageInput = Omit<NewMessage, 'status' | 'statusReason'>

export interface StreamMessageOptions {
  /** Aborting stops reading the source and cancels the message (`incomplete`, `cancelled`); the call rejects with the reason. */
  signal?: AbortSignal
  /** At most one delta per this many milliseconds (default 50); text that arrives meanwhile goes in the next one. */
  flushMs?: number
  /** The longest delta, in characters (default 16384, the service's default MAX_DELTA_CHARS); longer text is split. */
  maxDeltaChars?: number
}

/** How a streamed message ended. */
export interface StreamMessageResult {
  messageId: string
  /** `incomplete` when someone else stopped it first (a cancel, the idle timeout): `statusReason` says why. */
  status: 'completed' | 'incomplete'
  statusReason?: string
  /** The message's text length when it ended, in characters. */
  textLength: number
  /** How many delta requests were acknowledged (retries of one seq count once). */
  deltas: number
}

export interface ConversationPage<T> {
  items: T[]
  nextCursor: string | null
}

export interface ClientOptions {
  /** Where the service is, e.g. `https://conversation-store.internal`; a path prefix is kept. */
  baseUrl: string
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string
  /**
   * In place of `apiKey`: called before each try for a bearer token, so a token is renewed
   * when it expires. With `@azure/identity`:
   * `getToken: async () => (await credential.getToken('api://conversation-store/.default')).token`.
   * Its failure rejects the call as it is.
   */
  getToken?: () => Promise<string>
  /**
   * Retries 503 answers and network errors, only for requests that are safe to repeat:
   * GET, PUT, DELETE, appends whose messages all carry an id, and deltas (a repeat of an
   * applied seq changes nothing). Never create or PATCH (streamMessage's own final PATCH aside).
   * `attempts` counts tries (1 = no retry). The wait is `Retry-After` when sent, otherwise
   * 100 ms doubling per try, and never more than `maxDelayMs` (default 10 s). A 503 or a
   * lost answer may come after the write landed, so a retried conditional write (`ifMatch`,
   * `ifNoneMatch`) can end in 412, and a retried DELETE in 404: treat those as "maybe done".
   */
  retry?: { attempts: number, maxDelayMs?: number }
  /** Defaults to the global fetch; pass a wrapper to add timeouts, tracing, etc. */
  fetch?: typeof fetch
}
