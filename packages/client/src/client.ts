import { z } from 'zod'
import {
  AppendMessagesBodySchema, AppendResultSchema, ConversationPageSchema, ConversationSchema, ConversationSummarySchema, DeleteUserResultSchema,
  HealthSchema, MessagePageSchema, MessageSchema, RewindResultSchema, WorkflowStateSchema,
  type AppendResult, type Health, type Message, type RewindResult
} from '../../../src/schemas.js'
import { DeltaResultSchema } from '../../../src/stream-schemas.js'
import { errorFrom, etagOf, invalid, parse, lastEventIdOf, versioned, type Positioned } from './client-answers.js'
import { createTransport, type Call } from './client-transport.js'
import { conversationFeed, followEvents, userFeed, type ConversationEvent, type EventsOptions, type UserEvent } from './events.js'
import { streamMessage } from './stream-message.js'

export type { Health }
export { ConversationStoreError, type ConversationStoreErrorCode, type Positioned, type Versioned } from './client-answers.js'
export type { ConversationEvent, EventsOptions, UserEvent } from './events.js'
export type { FeedEventData, FeedEventType, UserFeedEventData, UserFeedEventType } from '../../../src/event-schemas.js'

// A typed client for conversation-store, published as `@conversation-store/client`.
// It uses the schemas the routes use (src/schemas.ts, compiled into the package), so a
// response that does not match the contract is an error here rather than a surprise later
// in the caller. Requests are not validated locally: the service is the authority and
// answers 400 FST_ERR_VALIDATION.

export type { AppendResult, Conversation, ConversationSummary, ForkedFrom, Message, MessageWindow, RewindResult, WorkflowState } from '../../../src/schemas.js'
import type {
  CreateConversationInput, ReplaceConversationInput, ConversationPatch, NewMessage, WorkflowStateInput, IfMatch, ConversationResult, GetConversationResult, WorkflowStateResult, View, ListItem, ListOptions, AppendOptions, MessageListOptions, MessagePage, MessagePatch, ConversationPage, ClientOptions, ForkOptions,
  MessageDelta, DeltaResult, StreamedMessageInput, StreamMessageOptions, StreamMessageResult
} from './client-types.js'
export type {
  CreateConversationInput, ReplaceConversationInput, ConversationPatch, NewMessage, WorkflowStateInput, IfMatch, ConversationResult, GetConversationResult, WorkflowStateResult, View, ListItem, ListOptions, AppendOptions, MessageListOptions, MessagePage, MessagePatch, ConversationPage, ClientOptions, ForkOptions,
  MessageDelta, DeltaResult, StreamedMessageInput, StreamMessageOptions, StreamMessageResult
} from './client-types.js'

// Narrower pages than the route's union, so that `view` decides the item type.
const FullPageSchema = ConversationPageSchema.extend({ items: z.array(ConversationSchema) })
const SummaryPageSchema = ConversationPageSchema.extend({ items: z.array(ConversationSummarySchema) })

export function createConversationStoreClient (options: ClientOptions) {
  const conversationPath = (id: string) => `/v1/conversations/${encodeURIComponent(id)}`
  const userPath = (userId: string) => `/v1/users/${encodeURIComponent(userId)}`
  const transport = createTransport(options)
  const { send } = transport

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

  const messagePath = (id: string, messageId: string) => `${conversationPath(id)}/messages/${encodeURIComponent(messageId)}`

  async function listMessages (id: string, list: MessageListOptions = {}): Promise<MessagePage> {
    const query = new URLSearchParams()
    for (const key of ['limit', 'order', 'cursor'] as const) {
      const value = list[key]
      if (value !== undefined) query.set(key, String(value))
    }
    const answer = await send({ method: 'GET', path: `${conversationPath(id)}/messages`, query, expect: [200], retryable: true })
    return parse(MessagePageSchema, answer.body)
  }

  async function editMessage (id: string, messageId: string, patch: MessagePatch, write: { ifMatch?: IfMatch }, retryable: boolean): Promise<{ message: Message, etag: string }> {
    const headers = { 'if-match': ifMatch(write.ifMatch) }
    const answer = await send({ method: 'PATCH', path: messagePath(id, messageId), body: patch, contentType: 'application/merge-patch+json', headers, expect: [200], retryable })
    return { message: parse(MessageSchema, answer.body), etag: etagOf(answer.headers) }
  }

  /**
   * Adds text to an in_progress message. Retried like an idempotent write: a seq already
   * applied with the same text answers 200 and changes nothing. A gap, or an applied seq
   * with other text, is 409 DELTA_OUT_OF_ORDER (`error.expectedSeq`); a message finished or
   * stopped is 409 MESSAGE_NOT_IN_PROGRESS (`error.status`, `error.statusReason`).
   */
  async function appendDelta (id: string, messageId: string, delta: MessageDelta, write: { ifMatch?: IfMatch } = {}): Promise<DeltaResult & { etag: string }> {
    const headers = { 'if-match': ifMatch(write.ifMatch) }
    const answer = await send({ method: 'POST', path: `${messagePath(id, messageId)}/deltas`, body: delta, headers, expect: [200], retryable: true })
    return { ...parse(DeltaResultSchema, answer.body), etag: etagOf(answer.headers) }
  }

  async function listConversations<V extends View = 'full'> (userId: string, list: ListOptions<V> = {}): Promise<ConversationPage<ListItem<V>> & Positioned> {
    const query = new URLSearchParams()
    for (const key of ['limit', 'cursor', 'view', 'tenantId'] as const) {
      const value = list[key]
      if (value !== undefined) query.set(key, String(value))
    }
    const answer = await send({ method: 'GET', path: `${userPath(userId)}/conversations`, query, expect: [200], retryable: true })
    // The cast only restates what the chosen schema has just checked.
    const page = parse(list.view === 'summary' ? SummaryPageSchema : FullPageSchema, answer.body) as ConversationPage<ListItem<V>>
    return { ...page, ...lastEventIdOf(answer.headers) }
  }

  return {
    /** POST /v1/conversations. Never retried: a repeat could answer 409 for a create that worked. */
    async createConversation (body: CreateConversationInput): Promise<ConversationResult> {
      const { conversation, etag, version } = await conversationCall({ method: 'POST', path: '/v1/conversations', body, retryable: false })
      return { conversation, etag, version }
    },

    /**
     * GET a conversation; with `lastMessages`, only its newest N messages (oldest first);
     * with `ifNoneMatch` naming the current version, `{ notModified: true }`.
     */
    async getConversation (id: string, read: { ifNoneMatch?: IfMatch, lastMessages?: number } = {}): Promise<GetConversationResult> {
      const headers = { 'if-none-match': ifMatch(read.ifNoneMatch) }
      const query = new URLSearchParams(read.lastMessages === undefined ? {} : { lastMessages: String(read.lastMessages) })
      const answer = await send({ method: 'GET', path: conversationPath(id), query, headers, expect: [200, 304], retryable: true })
      if (answer.status === 304) return { notModified: true, etag: etagOf(answer.headers), ...lastEventIdOf(answer.headers) }
      const conversation = parse(ConversationSchema, answer.body)
      return { notModified: false, conversation, ...versioned(answer.headers, conversation.version), ...lastEventIdOf(answer.headers) }
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
     * answers 412, since the version moved.) With `window` (a token budget) or
     * `lastMessages` (a count), the answer's `window` is the context after the append,
     * read in the same atomic step: a bot's turn in one request.
     */
    async appendMessages (id: string, messages: NewMessage[], write: AppendOptions = {}): Promise<AppendResult & Positioned & { etag: string }> {
      const body: z.input<typeof AppendMessagesBodySchema> = { messages }
      const query = new URLSearchParams()
      if (write.window !== undefined) query.set('window', String(write.window))
      if (write.lastMessages !== undefined) query.set('lastMessages', String(write.lastMessages))
      const answer = await send({
        method: 'POST',
        path: `${conversationPath(id)}/messages`,
        query,
        body,
        headers: { 'if-match': ifMatch(write.ifMatch) },
        expect: [200, 201],
        retryable: messages.every((message) => message.id !== undefined)
      })
      const result = parse(AppendResultSchema, answer.body)
      return { ...result, etag: versioned(answer.headers, result.version).etag, ...lastEventIdOf(answer.headers) }
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

    listMessages,

    /** Every message of a conversation, page by page, in `order` (oldest first by default). */
    async * allMessages (id: string, list: Omit<MessageListOptions, 'cursor'> = {}): AsyncGenerator<Message, void, undefined> {
      let cursor: string | undefined
      do {
        const page: MessagePage = await listMessages(id, { ...list, ...(cursor === undefined ? {} : { cursor }) })
        yield * page.items
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
    },

    /** The newest messages whose tokens fit in `maxTokens` (newest first), with their counts. */
    async contextWindow (id: string, maxTokens: number, window: { limit?: number } = {}): Promise<MessagePage> {
      const query = new URLSearchParams({ order: 'desc', maxTokens: String(maxTokens), ...(window.limit === undefined ? {} : { limit: String(window.limit) }) })
      const answer = await send({ method: 'GET', path: `${conversationPath(id)}/messages`, query, expect: [200], retryable: true })
      return parse(MessagePageSchema, answer.body)
    },

    /**
     * Rewinds a conversation: deletes every message after `afterMessageId` in one write (their
     * ids stay used). With a new append after it, that is edit-and-resend.
     */
    async rewind (id: string, afterMessageId: string, write: { ifMatch?: IfMatch } = {}): Promise<RewindResult & { etag: string }> {
      const answer = await send({
        method: 'DELETE',
        path: `${conversationPath(id)}/messages`,
        query: new URLSearchParams({ after: afterMessageId }),
        headers: { 'if-match': ifMatch(write.ifMatch) },
        expect: [200],
        retryable: true
      })
      const result = parse(RewindResultSchema, answer.body)
      return { ...result, etag: versioned(answer.headers, result.version).etag }
    },

    /**
     * Forks a conversation into a new one: its messages through `messageId` (all without
     * it), its metadata and workflow state, with `forkedFrom`. Not retried, as a create.
     */
    async fork (id: string, fork: ForkOptions = {}): Promise<ConversationResult> {
      const { conversation, etag, version } = await conversationCall({ method: 'POST', path: `${conversationPath(id)}/fork`, body: fork, retryable: false })
      return { conversation, etag, version }
    },

    async getMessage (id: string, messageId: string): Promise<Message> {
      const answer = await send({ method: 'GET', path: messagePath(id, messageId), expect: [200], retryable: true })
      return parse(MessageSchema, answer.body)
    },

    /**
     * A JSON merge patch of text, cardJson, cardId, metadata, or the status that finishes a
     * streamed message (`completed`) or stops it (`incomplete` with a `statusReason`, e.g.
     * `cancelled`): a write to the conversation. Not retried.
     */
    async patchMessage (id: string, messageId: string, patch: MessagePatch, write: { ifMatch?: IfMatch } = {}): Promise<{ message: Message, etag: string }> {
      return await editMessage(id, messageId, patch, write, false)
    },

    appendDelta,

    /**
     * Streams `source` (e.g. a model's text stream) into a new message, appended in_progress,
     * written as coalesced deltas and finished `completed`: see stream-message.ts.
     */
    async streamMessage (id: string, message: StreamedMessageInput, source: AsyncIterable<string>, stream: StreamMessageOptions = {}): Promise<StreamMessageResult> {
      return await streamMessage({
        // The message has an id, so the append is safe to repeat.
        start: async (started) => { await send({ method: 'POST', path: `${conversationPath(id)}/messages`, body: { messages: [started] }, expect: [200, 201], retryable: true }) },
        delta: async (messageId, delta) => await appendDelta(id, messageId, delta),
        // Safe to repeat too: a repeat after a try that landed answers 409 MESSAGE_NOT_IN_PROGRESS, naming the status.
        finish: async (messageId, patch) => (await editMessage(id, messageId, patch, {}, true)).message
      }, message, source, stream)
    },

    /** Deletes a message (its id stays used); answers the conversation's new ETag. */
    async deleteMessage (id: string, messageId: string, write: { ifMatch?: IfMatch } = {}): Promise<{ etag: string }> {
      const answer = await send({ method: 'DELETE', path: messagePath(id, messageId), headers: { 'if-match': ifMatch(write.ifMatch) }, expect: [204], retryable: true })
      return { etag: etagOf(answer.headers) }
    },

    /**
     * Follows a conversation: each change as a typed event, from `after` (a `lastEventId`, or
     * an event's `id`) or from now, reconnecting from the last event when a stream ends, until
     * conversation.deleted, the signal, or a `break`. See events.ts and docs/client.md.
     */
    events (id: string, follow: EventsOptions = {}): AsyncGenerator<ConversationEvent, void, undefined> {
      return followEvents(transport, conversationFeed(conversationPath(id)), follow)
    },

    /**
     * Follows a user's conversations (a sidebar): conversation.created, .updated (without
     * messages; deltas are left out) and .deleted, from `after` (a list's `lastEventId`, or an
     * event's `id`) or from now, reconnecting like events(), until the signal or a `break`.
     */
    userEvents (userId: string, follow: EventsOptions = {}): AsyncGenerator<UserEvent, void, undefined> {
      return followEvents(transport, userFeed(userPath(userId)), follow)
    },

    /** Returns how many conversations were deleted. */
    async deleteUserConversations (userId: string): Promise<number> {
      const answer = await send({ method: 'DELETE', path: `${userPath(userId)}/conversations`, expect: [200], retryable: true })
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
