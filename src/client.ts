import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import {
  AppendMessagesBodySchema, AppendResultSchema, ConversationPageSchema, ConversationSchema, ConversationSummarySchema,
  CreateConversationBodySchema, DeleteUserResultSchema, ErrorBodySchema, MessageInputSchema, PatchConversationBodySchema,
  HealthSchema, ReplaceConversationBodySchema, WorkflowStateBodySchema, WorkflowStateSchema,
  type AppendResult, type Conversation, type ConversationSummary, type Health, type WorkflowState
} from './schemas.js'

export type { Health }

// A typed client for conversation-store, imported as `conversation-store/client`.
// It uses the schemas the routes use, so a response that does not match the contract is
// an error here rather than a surprise later in the caller. Requests are not validated
// locally: the service is the authority and answers 400 FST_ERR_VALIDATION.

export type { AppendResult, Conversation, ConversationSummary, Message, WorkflowState } from './schemas.js'

/** What callers send: schema inputs, so fields with a server default may be left out. */
export type CreateConversationInput = z.input<typeof CreateConversationBodySchema>
export type ReplaceConversationInput = z.input<typeof ReplaceConversationBodySchema>
export type ConversationPatch = z.input<typeof PatchConversationBodySchema>
export type NewMessage = z.input<typeof MessageInputSchema>
export type WorkflowStateInput = z.input<typeof WorkflowStateBodySchema>

/**
 * An entity tag as received (the `ETag` header, e.g. `"kX3….7"`), a result that carries one,
 * or `*` (any existing version). Tags are opaque: echo them, never build them.
 */
export type IfMatch = string | { etag: string }

export interface Versioned {
  /** The `ETag` header as received; it names this version of this incarnation. */
  etag: string
  version: number
}

export type ConversationResult = Versioned & { conversation: Conversation }
export type GetConversationResult =
  | (ConversationResult & { notModified: false })
  | { notModified: true, etag: string }
export type WorkflowStateResult = Versioned & { state: WorkflowState }
export type View = 'full' | 'summary'
export type ListItem<V extends View> = V extends 'summary' ? ConversationSummary : Conversation

export interface ListOptions<V extends View = 'full'> {
  limit?: number
  cursor?: string
  view?: V
  tenantId?: string
}

export interface ConversationPage<T> {
  items: T[]
  nextCursor: string | null
}

// Narrower pages than the route's union, so that `view` decides the item type.
const FullPageSchema = ConversationPageSchema.extend({ items: z.array(ConversationSchema) })
const SummaryPageSchema = ConversationPageSchema.extend({ items: z.array(ConversationSummarySchema) })

/** The API's stable error codes, plus the client's own; any other string may also appear. */
export type ConversationStoreErrorCode =
  | 'CONVERSATION_NOT_FOUND' | 'WORKFLOW_STATE_NOT_FOUND' | 'CONVERSATION_EXISTS' | 'USER_MISMATCH'
  | 'PRECONDITION_FAILED' | 'TOO_MANY_MESSAGES' | 'FST_ERR_VALIDATION' | 'UNAUTHORIZED' | 'CORRUPT_RECORD'
  | 'STORE_UNAVAILABLE'
  /** The request never got an HTTP answer (refused, reset, DNS, aborted); `statusCode` is undefined. */
  | 'NETWORK_ERROR'
  /** A success answer that does not match the schemas (e.g. the service is newer than this client). */
  | 'INVALID_RESPONSE'
  /** An error answer without the API's JSON error body (e.g. from a proxy); `statusCode` is set. */
  | 'HTTP_ERROR'
  | (string & {})

export class ConversationStoreError extends Error {
  override name = 'ConversationStoreError'
  /** The HTTP status; undefined when there was no HTTP answer (`NETWORK_ERROR`). */
  readonly statusCode: number | undefined
  readonly code: ConversationStoreErrorCode
  /** From `Retry-After` (seconds), when the service sent one. */
  readonly retryAfterSeconds: number | undefined

  constructor (message: string, details: { code: string, statusCode?: number, retryAfterSeconds?: number, cause?: unknown }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = details.code
    this.statusCode = details.statusCode
    this.retryAfterSeconds = details.retryAfterSeconds
  }
}

export interface ClientOptions {
  /** Where the service is, e.g. `https://conversation-store.internal`; a path prefix is kept. */
  baseUrl: string
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string
  /**
   * Retries 503 answers and network errors, only for requests that are safe to repeat:
   * GET, PUT, DELETE, and appends whose messages all carry an id. Never create or PATCH.
   * `attempts` counts tries (1 = no retry). The wait is `Retry-After` when sent, otherwise
   * 100 ms doubling per try, and never more than `maxDelayMs` (default 10 s). A 503 or a
   * lost answer may come after the write landed, so a retried conditional write (`ifMatch`,
   * `ifNoneMatch`) can end in 412, and a retried DELETE in 404: treat those as "maybe done".
   */
  retry?: { attempts: number, maxDelayMs?: number }
  /** Defaults to the global fetch; pass a wrapper to add timeouts, tracing, etc. */
  fetch?: typeof fetch
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

interface Call {
  method: Method
  path: string
  query?: URLSearchParams
  body?: unknown
  contentType?: string
  headers?: Record<string, string | undefined>
  /** Statuses the method handles itself; any other is an error. */
  expect: number[]
  retryable: boolean
}

interface Answer {
  status: number
  headers: Headers
  body: unknown
}

export function createConversationStoreClient (options: ClientOptions) {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  const fetchImpl = options.fetch ?? globalThis.fetch
  // `|| 1` also turns NaN into a single try rather than an endless loop.
  const attempts = Math.max(1, Math.floor(options.retry?.attempts ?? 1) || 1)
  const maxDelayMs = options.retry?.maxDelayMs ?? 10_000
  const conversationPath = (id: string) => `/v1/conversations/${encodeURIComponent(id)}`

  async function send (call: Call): Promise<Answer> {
    const query = call.query?.toString() ?? ''
    const url = baseUrl + call.path + (query === '' ? '' : `?${query}`)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`
    if (call.body !== undefined) headers['content-type'] = call.contentType ?? 'application/json'
    for (const [name, value] of Object.entries(call.headers ?? {})) if (value !== undefined) headers[name] = value
    const init: RequestInit = { method: call.method, headers }
    if (call.body !== undefined) init.body = JSON.stringify(call.body)

    for (let attempt = 1; ; attempt++) {
      let response: Response
      let text: string
      try {
        response = await fetchImpl(url, init)
        // Reading the body is part of the exchange: a reset here is a network error too.
        text = await response.text()
      } catch (cause) {
        const error = new ConversationStoreError(`${call.method} ${call.path} failed: ${reason(cause)}`, { code: 'NETWORK_ERROR', cause })
        if (!call.retryable || attempt >= attempts) throw error
        await sleep(Math.min(backoff(attempt), maxDelayMs))
        continue
      }
      const body = parseJson(text)
      if (call.expect.includes(response.status)) return { status: response.status, headers: response.headers, body }
      const error = errorFrom(response.status, response.headers, body)
      if (response.status !== 503 || !call.retryable || attempt >= attempts) throw error
      const waitMs = error.retryAfterSeconds === undefined ? backoff(attempt) : error.retryAfterSeconds * 1000
      await sleep(Math.min(waitMs, maxDelayMs))
    }
  }

  function ifMatch (value: IfMatch | undefined): string | undefined {
    return typeof value === 'object' ? value.etag : value
  }

  async function conversationCall (call: Omit<Call, 'expect'>): Promise<ConversationResult & { created: boolean }> {
    const answer = await send({ expect: [200, 201], ...call })
    const conversation = parse(ConversationSchema, answer.body)
    return { conversation, created: answer.status === 201, ...versioned(answer.headers, conversation.version) }
  }

  async function workflowStateCall (call: Omit<Call, 'expect'>): Promise<WorkflowStateResult & { created: boolean }> {
    const answer = await send({ expect: [200, 201], ...call })
    const state = parse(WorkflowStateSchema, answer.body)
    return { state, created: answer.status === 201, ...versioned(answer.headers, state.version) }
  }

  async function listConversations<V extends View = 'full'> (userId: string, list: ListOptions<V> = {}): Promise<ConversationPage<ListItem<V>>> {
    const query = new URLSearchParams()
    for (const key of ['limit', 'cursor', 'view', 'tenantId'] as const) {
      const value = list[key]
      if (value !== undefined) query.set(key, String(value))
    }
    const answer = await send({ method: 'GET', path: `/v1/users/${encodeURIComponent(userId)}/conversations`, query, expect: [200], retryable: true })
    // The cast only restates what the chosen schema has just checked.
    return parse(list.view === 'summary' ? SummaryPageSchema : FullPageSchema, answer.body) as ConversationPage<ListItem<V>>
  }

  return {
    /** POST /v1/conversations. Never retried: a repeat could answer 409 for a create that worked. */
    async createConversation (body: CreateConversationInput): Promise<ConversationResult> {
      const { conversation, etag, version } = await conversationCall({ method: 'POST', path: '/v1/conversations', body, retryable: false })
      return { conversation, etag, version }
    },

    /** GET a conversation; with `ifNoneMatch` naming the current version, `{ notModified: true }`. */
    async getConversation (id: string, read: { ifNoneMatch?: IfMatch } = {}): Promise<GetConversationResult> {
      const headers = { 'if-none-match': ifMatch(read.ifNoneMatch) }
      const answer = await send({ method: 'GET', path: conversationPath(id), headers, expect: [200, 304], retryable: true })
      if (answer.status === 304) return { notModified: true, etag: etagOf(answer.headers) }
      const conversation = parse(ConversationSchema, answer.body)
      return { notModified: false, conversation, ...versioned(answer.headers, conversation.version) }
    },

    /** PUT: create or replace. `ifNoneMatch: '*'` makes it create-only (412 if it exists). */
    async replaceConversation (id: string, body: ReplaceConversationInput, write: { ifMatch?: IfMatch, ifNoneMatch?: '*' } = {}): Promise<ConversationResult & { created: boolean }> {
      const headers = { 'if-match': ifMatch(write.ifMatch), 'if-none-match': write.ifNoneMatch }
      return await conversationCall({ method: 'PUT', path: conversationPath(id), body, headers, retryable: true })
    },

    /** PATCH with a JSON merge patch (`null` removes a field). Not retried: every PATCH bumps the version. */
    async patchConversation (id: string, patch: ConversationPatch, write: { ifMatch?: IfMatch } = {}): Promise<ConversationResult> {
      const { conversation, etag, version } = await conversationCall({
        method: 'PATCH',
        path: conversationPath(id),
        body: patch,
        contentType: 'application/merge-patch+json',
        headers: { 'if-match': ifMatch(write.ifMatch) },
        retryable: false
      })
      return { conversation, etag, version }
    },

    async deleteConversation (id: string, write: { ifMatch?: IfMatch } = {}): Promise<void> {
      await send({ method: 'DELETE', path: conversationPath(id), headers: { 'if-match': ifMatch(write.ifMatch) }, expect: [204], retryable: true })
    },

    /**
     * Appends messages; the service skips ids it already has, so the call is retried only
     * when every message has an id. (With `ifMatch`, a retry after a write that did land
     * answers 412, since the version moved.)
     */
    async appendMessages (id: string, messages: NewMessage[], write: { ifMatch?: IfMatch } = {}): Promise<AppendResult & { etag: string }> {
      const body: z.input<typeof AppendMessagesBodySchema> = { messages }
      const answer = await send({
        method: 'POST',
        path: `${conversationPath(id)}/messages`,
        body,
        headers: { 'if-match': ifMatch(write.ifMatch) },
        expect: [200, 201],
        retryable: messages.every((message) => message.id !== undefined)
      })
      const result = parse(AppendResultSchema, answer.body)
      return { ...result, etag: versioned(answer.headers, result.version).etag }
    },

    listConversations,

    /** Every conversation of a user, following `nextCursor` page by page. */
    async * allConversations<V extends View = 'full'> (userId: string, list: ListOptions<V> = {}): AsyncGenerator<ListItem<V>, void, undefined> {
      let cursor = list.cursor
      do {
        const page: ConversationPage<ListItem<V>> = await listConversations(userId, { ...list, ...(cursor === undefined ? {} : { cursor }) })
        yield * page.items
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
    },

    /** Returns how many conversations were deleted. */
    async deleteUserConversations (userId: string): Promise<number> {
      const answer = await send({ method: 'DELETE', path: `/v1/users/${encodeURIComponent(userId)}/conversations`, expect: [200], retryable: true })
      return parse(DeleteUserResultSchema, answer.body).deleted
    },

    async getWorkflowState (id: string): Promise<WorkflowStateResult> {
      const { state, etag, version } = await workflowStateCall({ method: 'GET', path: `${conversationPath(id)}/workflow-state`, retryable: true })
      return { state, etag, version }
    },

    async putWorkflowState (id: string, state: WorkflowStateInput, write: { ifMatch?: IfMatch, ifNoneMatch?: '*' } = {}): Promise<WorkflowStateResult & { created: boolean }> {
      const headers = { 'if-match': ifMatch(write.ifMatch), 'if-none-match': write.ifNoneMatch }
      return await workflowStateCall({ method: 'PUT', path: `${conversationPath(id)}/workflow-state`, body: state, headers, retryable: true })
    },

    async deleteWorkflowState (id: string, write: { ifMatch?: IfMatch } = {}): Promise<void> {
      const headers = { 'if-match': ifMatch(write.ifMatch) }
      await send({ method: 'DELETE', path: `${conversationPath(id)}/workflow-state`, headers, expect: [204], retryable: true })
    },

    /** GET /health: the body on 200 and on 503 (`status: 'unavailable'`). Never retried: a probe reports, it does not wait. */
    async health (): Promise<Health> {
      const answer = await send({ method: 'GET', path: '/health', expect: [200, 503], retryable: false })
      const health = HealthSchema.safeParse(answer.body)
      if (health.success) return health.data
      throw answer.status === 503 ? errorFrom(503, answer.headers, answer.body) : invalid(health.error)
    }
  }
}

export type ConversationStoreClient = ReturnType<typeof createConversationStoreClient>

function backoff (attempt: number): number {
  return 100 * 2 ** (attempt - 1)
}

/** fetch rejects with a bare "fetch failed"; the useful part (ECONNREFUSED …) is its cause. */
function reason (error: unknown): string {
  const detail = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : ''
  return `${error instanceof Error ? error.message : String(error)}${detail}`
}

function parseJson (text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function parse<S extends z.ZodType> (schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body)
  if (!result.success) throw invalid(result.error)
  return result.data
}

function invalid (error: z.ZodError): ConversationStoreError {
  return new ConversationStoreError(`The service answered with an unexpected body: ${z.prettifyError(error)}`, { code: 'INVALID_RESPONSE', cause: error })
}

/** The ETag header and the version of the body it came with. */
function versioned (headers: Headers, version: number): Versioned {
  return { etag: etagOf(headers), version }
}

/** The ETag header, which must be a strong entity tag. */
function etagOf (headers: Headers): string {
  const etag = headers.get('etag')
  if (etag === null || !/^"[^"]*"$/.test(etag)) {
    throw new ConversationStoreError(`The service sent no usable ETag (${String(etag)})`, { code: 'INVALID_RESPONSE' })
  }
  return etag
}

function errorFrom (statusCode: number, headers: Headers, body: unknown): ConversationStoreError {
  const parsed = ErrorBodySchema.safeParse(body)
  // The service sends whole seconds; anything else (e.g. an HTTP date) is ignored.
  const retryAfter = /^\s*(\d+)\s*$/.exec(headers.get('retry-after') ?? '')?.[1]
  return new ConversationStoreError(parsed.success ? parsed.data.message : `HTTP ${statusCode}`, {
    code: parsed.success ? parsed.data.code : 'HTTP_ERROR',
    statusCode,
    ...(retryAfter === undefined ? {} : { retryAfterSeconds: Number(retryAfter) })
  })
}
