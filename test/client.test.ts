import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { AppOptions } from '../src/app.js'
import { ConversationStoreError, createConversationStoreClient, type ClientOptions, type ConversationEvent, type UserEvent } from '../packages/client/src/client.js'
import { StoreUnavailableError } from '../src/errors.js'
import type { AppendResult, ConversationFields, MessageInput, WorkflowState } from '../src/schemas.js'
import type { FeedEvent, Following } from '../src/store/events.js'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import type { Delta, DeltaResult } from '../src/store/stream-rules.js'
import type { MessageSelection, Preconditions, Reach, StoreHealth, Tagged, TaggedConversation, TaggedView } from '../src/store/types.js'
import { build, type TestContext } from './helpers/build.js'
import { openFeed } from './helpers/event-feed.js'
import { countTokens } from './helpers/tokens.js'

// The client against a live server on 127.0.0.1, so that fetch, headers and encoding are real.

async function serve (t: TestContext, env: Record<string, string> = {}, options: AppOptions = {}): Promise<string> {
  const app = await build(t, env, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/** The ConversationStoreError a call rejects with. */
async function failure (promise: Promise<unknown>): Promise<ConversationStoreError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ConversationStoreError) return error
    throw error
  }
  throw new Error('expected a ConversationStoreError')
}

interface SentRequest { method: string, url: string, headers: Headers, body: string | undefined }

/** A fetch that records what it sent, for checking headers and bodies. */
function recordingFetch (): { fetch: typeof fetch, requests: SentRequest[] } {
  const requests: SentRequest[] = []
  return {
    requests,
    fetch: async (input, init) => {
      const body = typeof init?.body === 'string' ? init.body : undefined
      requests.push({ method: init?.method ?? 'GET', url: String(input), headers: new Headers(init?.headers), body })
      return await fetch(input, init)
    }
  }
}

const limits = { ttlSeconds: 60, maxMessagesPerConversation: 100 }

/**
 * A memory store whose operations fail with 503 for the first `failures[op]` calls. A delta
 * fails after it was applied: the write lands and its answer is lost.
 */
class FlakyStore extends MemoryConversationStore {
  readonly calls = { get: 0, create: 0, appendMessages: 0, appendDelta: 0, ping: 0 }
  constructor (private readonly failures: Partial<Record<keyof FlakyStore['calls'], number>>) {
    super({ maxConversations: 100, limits, countTokens })
  }

  #attempt (op: keyof FlakyStore['calls']): void {
    this.calls[op]++
    if (this.calls[op] <= (this.failures[op] ?? 0)) throw new StoreUnavailableError()
  }

  override async get (id: string, messages?: MessageSelection): Promise<TaggedView | undefined> {
    this.#attempt('get')
    return await super.get(id, messages)
  }

  override async create (id: string, fields: ConversationFields): Promise<TaggedConversation> {
    this.#attempt('create')
    return await super.create(id, fields)
  }

  override async appendMessages (id: string, inputs: MessageInput[], preconditions: Preconditions): Promise<AppendResult & Tagged> {
    this.#attempt('appendMessages')
    return await super.appendMessages(id, inputs, preconditions)
  }

  override async appendDelta (id: string, messageId: string, delta: Delta, preconditions: Preconditions, reach?: Reach): Promise<DeltaResult & Tagged> {
    const result = await super.appendDelta(id, messageId, delta, preconditions, reach)
    this.#attempt('appendDelta')
    return result
  }

  override async ping (): Promise<StoreHealth> {
    this.#attempt('ping')
    return await super.ping()
  }
}

/** A memory store whose event feeds (conversations' and users') the test ends, as the service does when the store fails: the listener gets null. */
class EndingStore extends MemoryConversationStore {
  readonly listeners: Array<(event: FeedEvent | null) => void> = []
  constructor () {
    super({ maxConversations: 100, limits, countTokens })
  }

  override async follow (id: string, after: string | undefined, reach: Reach, listener: (event: FeedEvent | null) => void): Promise<Following> {
    const following = await super.follow(id, after, reach, listener)
    this.listeners.push(listener)
    return following
  }

  override async followUser (userId: string, after: string | undefined, listener: (event: FeedEvent | null) => void): Promise<Following> {
    const following = await super.followUser(userId, after, listener)
    this.listeners.push(listener)
    return following
  }

  endFeeds (): void {
    for (const listener of this.listeners.splice(0)) listener(null)
  }
}

const message = (id: string, text = id): MessageInput => ({ id, role: 'user', kind: 'text', text })

t.test('health', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  t.match(await client.health(), { status: 'ok', backend: 'memory', store: { status: 'up' } })

  const down = createConversationStoreClient({ baseUrl: await serve(t, {}, { store: new FlakyStore({ ping: 1 }) }) })
  t.match(await down.health(), { status: 'unavailable', store: { status: 'down' } }, '503 still gives the health body')
})

t.test('conversations: create, read, 304, errors', async (t) => {
  const { fetch, requests } = recordingFetch()
  // A trailing slash on baseUrl is harmless.
  const client = createConversationStoreClient({ baseUrl: `${await serve(t)}/`, fetch })

  const created = await client.createConversation({ id: 'c1', userId: 'u1', title: 'Refund', messages: [{ role: 'user', text: 'hi' }] })
  t.match(created.etag, /^"[^"]+"$/, 'the ETag as received: a strong, opaque tag')
  t.equal(created.version, 1)
  t.match(created.conversation, { id: 'c1', userId: 'u1', tenantId: 'default', status: 'active', version: 1 })
  t.equal(created.conversation.messages[0]?.kind, 'text', 'server defaults come back parsed')
  t.equal(requests[0]?.headers.get('content-type'), 'application/json')
  t.equal(requests[0]?.url.startsWith('http://127.0.0.1:'), true)
  t.notMatch(requests[0]?.url ?? '', /\/\/v1/, 'no double slash')

  const read = await client.getConversation('c1')
  t.equal(read.notModified, false)
  if (!read.notModified) t.same(read.conversation, created.conversation)
  t.equal(read.etag, created.etag)

  t.match(read.lastEventId, /^\S+-0$/, 'the Last-Event-ID of the answer: where its event feed stands (no event yet)')

  const cached = await client.getConversation('c1', { ifNoneMatch: created.etag })
  t.same(cached, { notModified: true, etag: created.etag, lastEventId: read.lastEventId })
  t.equal(requests.at(-1)?.headers.get('if-none-match'), created.etag)
  t.same(await client.getConversation('c1', { ifNoneMatch: created }), cached, 'a result stands for its ETag')
  const stale = await client.getConversation('c1', { ifNoneMatch: '"1"' })
  t.equal(stale.notModified, false, 'a bare version is not an ETag of this service')

  const generated = await client.createConversation({ userId: 'u1' })
  t.match(generated.conversation.id, /^[0-9a-f-]{36}$/, 'the service picks an id')

  t.match(await failure(client.getConversation('nope')), {
    name: 'ConversationStoreError', statusCode: 404, code: 'CONVERSATION_NOT_FOUND', message: "Conversation 'nope' was not found"
  })
  t.match(await failure(client.createConversation({ id: 'c1', userId: 'u1' })), { statusCode: 409, code: 'CONVERSATION_EXISTS' })
  const invalid = await failure(client.createConversation({ userId: 'has space' }))
  t.match(invalid, { statusCode: 400, code: 'FST_ERR_VALIDATION', retryAfterSeconds: undefined })
  t.ok(invalid instanceof Error)
})

t.test('path segments are URL-encoded', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  // A user id may contain / ? # % & and non-ASCII: each would break an unencoded URL.
  const userId = 'team/ä?x=1&y#z%41'
  await client.createConversation({ id: 'a:b.c-d_e', userId })
  const page = await client.listConversations(userId)
  t.same(page.items.map((item) => item.id), ['a:b.c-d_e'])
  t.equal(page.items[0]?.userId, userId)
  const read = await client.getConversation('a:b.c-d_e')
  t.equal(read.notModified, false)
  t.match(await failure(client.getConversation('../health')), { statusCode: 400, code: 'FST_ERR_VALIDATION' }, 'no path traversal')
  t.equal(await client.deleteUserConversations(userId), 1)
})

t.test('replace, patch, delete with preconditions', async (t) => {
  const { fetch, requests } = recordingFetch()
  const client = createConversationStoreClient({ baseUrl: await serve(t), fetch })

  const first = await client.replaceConversation('p1', { userId: 'u1', title: 'one' }, { ifNoneMatch: '*' })
  t.match(first, { created: true, version: 1, conversation: { id: 'p1', title: 'one' } })
  t.equal(requests.at(-1)?.headers.get('if-none-match'), '*')
  t.match(await failure(client.replaceConversation('p1', { userId: 'u1' }, { ifNoneMatch: '*' })), { statusCode: 412, code: 'PRECONDITION_FAILED' })

  const second = await client.replaceConversation('p1', { userId: 'u1', title: 'two' }, { ifMatch: first })
  t.match(second, { created: false, version: 2, conversation: { title: 'two' } })
  t.not(second.etag, first.etag)
  t.equal(requests.at(-1)?.headers.get('if-match'), first.etag, 'a result is sent as its ETag')
  t.match(await failure(client.replaceConversation('p1', { userId: 'u1' }, { ifMatch: first.etag })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.match(await failure(client.replaceConversation('p1', { userId: 'u2' })), { statusCode: 409, code: 'USER_MISMATCH' })
  t.match(await failure(client.replaceConversation('p1', { id: 'other', userId: 'u1' })), { statusCode: 400, code: 'FST_ERR_VALIDATION' })

  const patched = await client.patchConversation('p1', { title: null, metadata: { a: 1 } }, { ifMatch: second.etag })
  t.equal(requests.at(-1)?.headers.get('content-type'), 'application/merge-patch+json')
  t.match(patched, { version: 3, conversation: { metadata: { a: 1 } } })
  t.equal(patched.conversation.title, undefined, 'null removed the title')
  t.match(await failure(client.patchConversation('p1', { title: 'x' }, { ifMatch: second })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.match(await failure(client.patchConversation('missing', { title: 'x' })), { statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
  const any = await client.patchConversation('p1', { title: 'any' }, { ifMatch: '*' })
  t.equal(any.version, 4)
  t.equal(requests.at(-1)?.headers.get('if-match'), '*')

  t.match(await failure(client.deleteConversation('p1', { ifMatch: patched })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.equal(await client.deleteConversation('p1', { ifMatch: any }), undefined)
  t.match(await failure(client.deleteConversation('p1')), { statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
})

t.test('appendMessages', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  const created = await client.createConversation({ id: 'm1', userId: 'u1' })

  const appended = await client.appendMessages('m1', [message('a'), message('b')], { ifMatch: created })
  t.match(appended, { appended: 2, skipped: 0, version: 2, messageCount: 2 })
  const again = await client.appendMessages('m1', [message('a'), message('b')])
  t.match(appended.lastEventId, /^\S+-2$/, 'one event per message appended')
  t.same(again, { appended: 0, skipped: 2, version: 2, messageCount: 2, etag: appended.etag, lastEventId: appended.lastEventId }, 'a repeat is skipped by id')
  const anonymous = await client.appendMessages('m1', [{ role: 'assistant', text: 'no id' }])
  t.match(anonymous, { appended: 1, version: 3 })
  t.match(await failure(client.appendMessages('m1', [message('c')], { ifMatch: appended })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.match(await failure(client.appendMessages('missing', [message('c')])), { statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
  t.match(await failure(client.appendMessages('m1', [])), { statusCode: 400, code: 'FST_ERR_VALIDATION' })
})

t.test('appendMessages with a window: the turn in one request', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  await client.createConversation({ id: 'w1', userId: 'u1', messages: [message('a'), message('b')] })
  const byTokens = await client.appendMessages('w1', [message('c')], { window: 1000 })
  t.same(byTokens.window?.items.map((item) => item.id), ['c', 'b', 'a'], 'newest first, as a context window reads')
  t.equal(byTokens.window?.totalTokens, byTokens.window?.items.reduce((sum, item) => sum + (item.tokens ?? 0), 0))
  const byCount = await client.appendMessages('w1', [message('d')], { lastMessages: 2 })
  t.same(byCount.window?.items.map((item) => item.id), ['c', 'd'], 'the newest two, oldest first')
  t.equal(byCount.window?.messageCount, 4)
  t.equal((await client.appendMessages('w1', [message('e')])).window, undefined, 'no window unless asked')
})

t.test('rewind: edit and resend', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  const created = await client.createConversation({ id: 'r1', userId: 'u1', messages: [message('a'), message('b'), message('c')] })
  const rewound = await client.rewind('r1', 'a', { ifMatch: created })
  t.match(rewound, { deleted: 2, messageCount: 1, version: 2 })
  t.match(await failure(client.rewind('r1', 'a', { ifMatch: created })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.match(await failure(client.rewind('r1', 'nope')), { statusCode: 404, code: 'MESSAGE_NOT_FOUND' })
  const resent = await client.appendMessages('r1', [message('b2')], { ifMatch: rewound })
  t.match(resent, { appended: 1, messageCount: 2, version: 3 })
})

t.test('fork: keep the old branch, then edit and resend on the new one', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  await client.createConversation({ id: 'f1', userId: 'u1', title: 'main', messages: [message('a'), message('b'), message('c')] })
  const forked = await client.fork('f1', { id: 'f1-branch', messageId: 'a', title: 'branch' })
  t.match(forked, { version: 1, conversation: { id: 'f1-branch', title: 'branch', forkedFrom: { conversationId: 'f1', messageId: 'a', version: 1 } } })
  t.same(forked.conversation.messages.map((item) => item.id), ['a'])
  const resent = await client.appendMessages('f1-branch', [message('b2')], { ifMatch: forked })
  t.match(resent, { appended: 1, messageCount: 2, version: 2 })
  t.match(await failure(client.fork('f1', { id: 'f1-branch' })), { statusCode: 409, code: 'CONVERSATION_EXISTS' })
  t.match(await failure(client.fork('f1', { messageId: 'nope' })), { statusCode: 404, code: 'MESSAGE_NOT_FOUND' })
  t.equal((await client.listMessages('f1')).items.length, 3, 'the source keeps its branch')
})

t.test('listing, paging and deleting a user', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  for (const [index, id] of ['l1', 'l2', 'l3', 'l4', 'l5'].entries()) {
    await client.createConversation({ id, userId: 'lister', tenantId: index % 2 === 0 ? 'even' : 'odd', messages: [message(`${id}-m`)] })
  }

  const firstPage = await client.listConversations('lister', { limit: 2 })
  t.same(firstPage.items.map((item) => item.id), ['l5', 'l4'], 'most recent first')
  t.type(firstPage.nextCursor, 'string')
  t.equal(firstPage.items[0]?.messages.length, 1, 'the full view has messages')
  t.type(firstPage.lastEventId, 'string', 'the position of the user\'s feed that the page reflects')
  const secondPage = await client.listConversations('lister', { limit: 2, cursor: firstPage.nextCursor ?? '' })
  t.same(secondPage.items.map((item) => item.id), ['l3', 'l2'])
  t.equal(secondPage.lastEventId, firstPage.lastEventId, 'no write in between, the same position')

  const summaries = await client.listConversations('lister', { view: 'summary', tenantId: 'even' })
  t.same(summaries.items.map((item) => [item.id, item.messageCount]), [['l5', 1], ['l3', 1], ['l1', 1]])
  t.equal(summaries.nextCursor, null)

  const all: string[] = []
  for await (const item of client.allConversations('lister', { limit: 2 })) all.push(item.id)
  t.same(all, ['l5', 'l4', 'l3', 'l2', 'l1'], 'the iterator follows nextCursor across three pages')
  const counts: number[] = []
  for await (const item of client.allConversations('lister', { limit: 1, view: 'summary', tenantId: 'odd' })) counts.push(item.messageCount)
  t.same(counts, [1, 1])
  const empty: unknown[] = []
  for await (const item of client.allConversations('nobody')) empty.push(item)
  t.same(empty, [])

  t.match(await failure(client.listConversations('lister', { cursor: 'not-a-cursor' })), { statusCode: 400, code: 'FST_ERR_VALIDATION' })
  t.match(await failure(client.listConversations('lister', { limit: 0 })), { statusCode: 400, code: 'FST_ERR_VALIDATION' })

  t.equal(await client.deleteUserConversations('lister'), 5)
  t.equal(await client.deleteUserConversations('lister'), 0)
  const emptied = await client.listConversations('lister')
  t.same([emptied.items, emptied.nextCursor], [[], null])
  t.type(emptied.lastEventId, 'string', 'a user without conversations still has a position')
})

t.test('workflow state', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  const state = { step: 'ask', turnCount: 0, status: 'active' } as const
  t.match(await failure(client.getWorkflowState('w1')), { statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
  await client.createConversation({ id: 'w1', userId: 'u1' })
  t.match(await failure(client.getWorkflowState('w1')), { statusCode: 404, code: 'WORKFLOW_STATE_NOT_FOUND' })

  const created = await client.putWorkflowState('w1', state, { ifNoneMatch: '*' })
  t.match(created, { created: true, version: 1, state: { conversationId: 'w1', step: 'ask' } })
  t.match(await failure(client.putWorkflowState('w1', state, { ifNoneMatch: '*' })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  const replaced = await client.putWorkflowState('w1', { ...state, turnCount: 1 }, { ifMatch: created })
  t.match(replaced, { created: false, version: 2, state: { turnCount: 1 } })
  t.match(await failure(client.putWorkflowState('w1', state, { ifMatch: created.etag })), { statusCode: 412, code: 'PRECONDITION_FAILED' })

  const read = await client.getWorkflowState('w1')
  const expected: WorkflowState = replaced.state
  t.same(read, { state: expected, etag: replaced.etag, version: 2 })

  t.match(await failure(client.deleteWorkflowState('w1', { ifMatch: created })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  t.equal(await client.deleteWorkflowState('w1', { ifMatch: '*' }), undefined)
  t.match(await failure(client.deleteWorkflowState('w1')), { statusCode: 404, code: 'WORKFLOW_STATE_NOT_FOUND' })
})

t.test('apiKey', async (t) => {
  const baseUrl = await serve(t, { API_KEYS: 'k1' })
  const anonymous = createConversationStoreClient({ baseUrl })
  t.match(await failure(anonymous.listConversations('u1')), { statusCode: 401, code: 'UNAUTHORIZED' })
  t.match(await failure(createConversationStoreClient({ baseUrl, apiKey: 'k2' }).listConversations('u1')), { statusCode: 401, code: 'UNAUTHORIZED' })
  t.equal((await anonymous.health()).status, 'ok', '/health stays open')

  const client = createConversationStoreClient({ baseUrl, apiKey: 'k1' })
  t.equal((await client.createConversation({ id: 'k', userId: 'u1' })).version, 1)
  t.equal((await client.listConversations('u1')).items.length, 1)
})

t.test('getToken: a token provider in place of a key, asked before each try', async (t) => {
  const { startIdentityProvider } = await import('./helpers/identity-provider.js')
  const { authEnv } = await import('./helpers/access-suite.js')
  const idp = await startIdentityProvider()
  t.teardown(() => idp.close())
  const baseUrl = await serve(t, authEnv(idp))
  let asked = 0
  const client = createConversationStoreClient({ baseUrl, getToken: async () => { asked++; return await idp.sign({ azp: 'app-writer' }) } })
  t.equal((await client.createConversation({ id: 'tok', userId: 'u1', tenantId: 'contoso' })).version, 1)
  t.match(await client.getConversation('tok'), { notModified: false, conversation: { tenantId: 'contoso' } })
  t.equal(asked, 2, 'one token per request')
  const reader = createConversationStoreClient({ baseUrl, getToken: async () => await idp.sign({ azp: 'app-reader' }) })
  t.match(await failure(reader.deleteConversation('tok')), { statusCode: 403, code: 'FORBIDDEN' })
  const failing = createConversationStoreClient({ baseUrl, getToken: async () => { throw new Error('no credential') } })
  await t.rejects(failing.listConversations('u1'), { message: 'no credential' }, 'the provider\'s failure as it is')
  t.throws(() => createConversationStoreClient({ baseUrl, apiKey: 'k', getToken: async () => 't' }), TypeError)
})

t.test('retry', async (t) => {
  t.test('without retry, a 503 is STORE_UNAVAILABLE with retryAfterSeconds', async (t) => {
    const store = new FlakyStore({ get: 1 })
    const client = createConversationStoreClient({ baseUrl: await serve(t, { RETRY_AFTER_SECONDS: '1' }, { store }) })
    const error = await failure(client.getConversation('x'))
    t.match(error, { statusCode: 503, code: 'STORE_UNAVAILABLE', retryAfterSeconds: 1 })
    t.equal(store.calls.get, 1, 'tried once')
  })

  t.test('a GET is retried after Retry-After', async (t) => {
    const store = new FlakyStore({ get: 1 })
    const client = createConversationStoreClient({ baseUrl: await serve(t, { RETRY_AFTER_SECONDS: '1' }, { store }), retry: { attempts: 3 } })
    await client.createConversation({ id: 'r1', userId: 'u1' })
    const started = Date.now()
    const read = await client.getConversation('r1')
    t.equal(read.notModified, false)
    t.equal(store.calls.get, 2, 'failed once, then worked')
    t.ok(Date.now() - started >= 950, 'waited the Retry-After second')
  })

  t.test('maxDelayMs caps the wait; attempts bounds the tries', async (t) => {
    const store = new FlakyStore({ get: 4 })
    const client = createConversationStoreClient({
      baseUrl: await serve(t, { RETRY_AFTER_SECONDS: '1' }, { store }), retry: { attempts: 3, maxDelayMs: 20 }
    })
    const started = Date.now()
    t.match(await failure(client.getConversation('r1')), { statusCode: 503, code: 'STORE_UNAVAILABLE', retryAfterSeconds: 1 })
    t.equal(store.calls.get, 3, 'three tries in all')
    t.ok(Date.now() - started < 900, 'did not wait a whole second')
    t.match(await failure(client.getConversation('r1')), { code: 'CONVERSATION_NOT_FOUND' }, 'the fourth failure, then the store answers')
    t.equal(store.calls.get, 5)
  })

  t.test('a 503 without Retry-After backs off on its own', async (t) => {
    const answers = [new Response('{"statusCode":503,"code":"FST_UNDER_PRESSURE","error":"Service Unavailable","message":"busy"}', { status: 503 }), new Response(null, { status: 204 })]
    const client = createConversationStoreClient({
      baseUrl: 'http://127.0.0.1:1', fetch: async () => answers.shift() ?? Response.error(), retry: { attempts: 2 }
    })
    const started = Date.now()
    t.equal(await client.deleteConversation('c'), undefined)
    t.equal(answers.length, 0, 'asked twice')
    t.ok(Date.now() - started >= 90, 'waited the first backoff step (100 ms)')
  })

  t.test('POST create is never retried', async (t) => {
    const store = new FlakyStore({ create: 1 })
    const client = createConversationStoreClient({ baseUrl: await serve(t, {}, { store }), retry: { attempts: 3, maxDelayMs: 10 } })
    t.match(await failure(client.createConversation({ id: 'n1', userId: 'u1' })), { statusCode: 503, code: 'STORE_UNAVAILABLE' })
    t.equal(store.calls.create, 1)
  })

  t.test('an append is retried only when every message has an id', async (t) => {
    const store = new FlakyStore({ appendMessages: 1 })
    const client = createConversationStoreClient({ baseUrl: await serve(t, { RETRY_AFTER_SECONDS: '0' }, { store }), retry: { attempts: 2 } })
    await client.createConversation({ id: 'a1', userId: 'u1' })
    t.match(await failure(client.appendMessages('a1', [message('x'), { role: 'user', text: 'no id' }])), { code: 'STORE_UNAVAILABLE' })
    t.equal(store.calls.appendMessages, 1, 'not retried: a repeat could duplicate the message without an id')
    store.calls.appendMessages = 0
    t.match(await client.appendMessages('a1', [message('x'), message('y')]), { appended: 2 })
    t.equal(store.calls.appendMessages, 2, 'retried')
  })

  t.test('network errors', async (t) => {
    // A port that was just free: the connection is refused.
    const app = await build(t)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    await app.close()

    let calls = 0
    const counting: ClientOptions['fetch'] = async (input, init) => { calls++; return await fetch(input, init) }
    const client = createConversationStoreClient({ baseUrl, fetch: counting, retry: { attempts: 3, maxDelayMs: 10 } })
    const error = await failure(client.getConversation('c1'))
    t.match(error, { code: 'NETWORK_ERROR', statusCode: undefined, retryAfterSeconds: undefined })
    t.ok(error.cause instanceof Error, 'the fetch failure is the cause')
    t.match(error.message, /^GET \/v1\/conversations\/c1 failed: fetch failed \(.*ECONNREFUSED/, 'the message says why')
    t.equal(calls, 3, 'an idempotent GET is retried')

    calls = 0
    t.match(await failure(client.createConversation({ userId: 'u1' })), { code: 'NETWORK_ERROR' })
    t.equal(calls, 1, 'a create is not')
    calls = 0
    t.match(await failure(client.patchConversation('c1', { title: 'x' })), { code: 'NETWORK_ERROR' })
    t.equal(calls, 1, 'nor a PATCH')
  })
})

t.test('answers that break the contract', async (t) => {
  const answering = (body: string | null, init: ResponseInit): typeof fetch => async () => new Response(body, init)
  const client = (body: string | null, init: ResponseInit) =>
    createConversationStoreClient({ baseUrl: 'http://127.0.0.1:1', fetch: answering(body, init) })

  t.match(await failure(client('<html>bad gateway</html>', { status: 502 }).getConversation('c')),
    { statusCode: 502, code: 'HTTP_ERROR', message: 'HTTP 502' })
  t.match(await failure(client('{"id":"c"}', { status: 200, headers: { etag: '"1"' } }).getConversation('c')),
    { code: 'INVALID_RESPONSE', statusCode: undefined })
  t.match(await failure(client(null, { status: 304 }).getConversation('c', { ifNoneMatch: '"x.1"' })),
    { code: 'INVALID_RESPONSE' }, 'a 304 without an ETag')
  t.match(await failure(client('{}', { status: 200 }).health()), { code: 'INVALID_RESPONSE' })

  let calls = 0
  // eslint-disable-next-line prefer-promise-reject-errors -- a fetch wrapper may reject with anything, not only an Error
  const throwing: typeof fetch = async () => { calls++; return await Promise.reject('boom') }
  const odd = createConversationStoreClient({ baseUrl: 'http://127.0.0.1:1', fetch: throwing, retry: { attempts: Number.NaN } })
  t.match(await failure(odd.getConversation('c')), { code: 'NETWORK_ERROR', message: 'GET /v1/conversations/c failed: boom' })
  t.equal(calls, 1, 'attempts: NaN means one try')
  t.match(await failure(client('Service Unavailable', { status: 503, headers: { 'retry-after': 'soon' } }).health()),
    { statusCode: 503, code: 'HTTP_ERROR', retryAfterSeconds: undefined })
})

t.test('messages: pages, the async iterator, tail reads, context windows, one message', async (t) => {
  const client = createConversationStoreClient({ baseUrl: await serve(t) })
  await client.createConversation({ id: 'mm', userId: 'u1', messages: Array.from({ length: 7 }, (_, i) => message(`m${i}`, `words ${i}`)) })

  const page = await client.listMessages('mm', { limit: 3, order: 'desc' })
  t.same(page.items.map((item) => item.id), ['m6', 'm5', 'm4'])
  t.equal(page.messageCount, 7)
  t.type(page.nextCursor, 'string')
  const all: string[] = []
  for await (const item of client.allMessages('mm', { limit: 2 })) all.push(item.id)
  t.same(all, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6'], 'the iterator follows nextCursor')

  const tail = await client.getConversation('mm', { lastMessages: 2 })
  t.same(tail.notModified ? [] : tail.conversation.messages.map((item) => item.id), ['m5', 'm6'])

  const window = await client.contextWindow('mm', countTokens({ text: 'words 6' }) + countTokens({ text: 'words 5' }))
  t.same(window.items.map((item) => [item.id, item.tokens]), [['m6', countTokens({ text: 'words 6' })], ['m5', countTokens({ text: 'words 5' })]])
  t.equal(window.totalTokens, countTokens({ text: 'words 6' }) + countTokens({ text: 'words 5' }))
  t.same((await client.contextWindow('mm', 1_000_000, { limit: 1 })).items.map((item) => item.id), ['m6'])

  t.match(await client.getMessage('mm', 'm3'), { id: 'm3', text: 'words 3' })
  const read = await client.getConversation('mm')
  const edited = await client.patchMessage('mm', 'm3', { text: 'edited', metadata: { k: 1 } }, { ifMatch: read.etag })
  t.match(edited.message, { id: 'm3', text: 'edited', metadata: { k: 1 } })
  t.not(edited.etag, read.etag)
  t.match(await failure(client.patchMessage('mm', 'm3', { text: 'x' }, { ifMatch: read })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
  const deleted = await client.deleteMessage('mm', 'm3', { ifMatch: edited.etag })
  t.match(deleted.etag, /^"[^"]+"$/)
  t.match(await failure(client.getMessage('mm', 'm3')), { statusCode: 404, code: 'MESSAGE_NOT_FOUND' })
  t.equal((await client.listMessages('mm')).messageCount, 6)
})

t.test('streamed messages', async (t) => {
  /** A conversation holding one question, for a stream to answer. */
  async function conversation (baseUrl: string, id: string): Promise<void> {
    await createConversationStoreClient({ baseUrl }).createConversation({ id, userId: 'streamer', messages: [message('q')] })
  }
  /** Waits up to 2 s for `condition`. */
  async function until (condition: () => boolean): Promise<boolean> {
    for (let waited = 0; waited < 2000 && !condition(); waited += 10) await sleep(10)
    return condition()
  }
  const deltaBodies = (requests: SentRequest[]): unknown[] =>
    requests.filter((request) => request.url.endsWith('/deltas')).map((request) => JSON.parse(request.body ?? 'null'))

  t.test('appendDelta: numbered deltas, a safe repeat, 409 DELTA_OUT_OF_ORDER with expectedSeq, MESSAGE_NOT_IN_PROGRESS with status and reason', async (t) => {
    const baseUrl = await serve(t, { MAX_DELTA_CHARS: '8' })
    const client = createConversationStoreClient({ baseUrl })
    await conversation(baseUrl, 'd1')
    const started = await client.appendMessages('d1', [{ id: 'a', role: 'assistant', status: 'in_progress', text: 'Once' }])
    t.equal((await client.getMessage('d1', 'a')).status, 'in_progress')

    const first = await client.appendDelta('d1', 'a', { seq: 1, text: ' upon' }, { ifMatch: started })
    t.match(first, { messageId: 'a', seq: 1, textLength: 9, etag: /^"[^"]+"$/ })
    t.not(first.etag, started.etag, 'a delta is a write')
    t.same(await client.appendDelta('d1', 'a', { seq: 1, text: ' upon' }), first, 'a repeat of an applied seq changes nothing')

    const gap = await failure(client.appendDelta('d1', 'a', { seq: 3, text: '!' }))
    t.match(gap, { statusCode: 409, code: 'DELTA_OUT_OF_ORDER', expectedSeq: 2, status: undefined })
    t.match(await failure(client.appendDelta('d1', 'a', { seq: 1, text: ' other' })), { code: 'DELTA_OUT_OF_ORDER', expectedSeq: 2 }, 'an applied seq with other text')
    t.match(await failure(client.appendDelta('d1', 'a', { seq: 2, text: '!' }, { ifMatch: started })), { statusCode: 412, code: 'PRECONDITION_FAILED' })
    t.match(await failure(client.appendDelta('d1', 'a', { seq: 2, text: 'x'.repeat(9) })), { statusCode: 413, code: 'DELTA_TOO_LARGE' })
    t.match(await failure(client.patchMessage('d1', 'a', { text: 'rewritten' })), { statusCode: 409, code: 'MESSAGE_IN_PROGRESS' })

    const cancelled = await client.patchMessage('d1', 'a', { status: 'incomplete', statusReason: 'cancelled' })
    t.match(cancelled.message, { status: 'incomplete', statusReason: 'cancelled', text: 'Once upon' })
    const late = await failure(client.appendDelta('d1', 'a', { seq: 2, text: '!' }))
    t.match(late, { statusCode: 409, code: 'MESSAGE_NOT_IN_PROGRESS', status: 'incomplete', statusReason: 'cancelled', expectedSeq: undefined })
  })

  t.test('streamMessage: many small pieces arrive whole, completed, in fewer deltas than pieces', async (t) => {
    const { fetch, requests } = recordingFetch()
    const baseUrl = await serve(t)
    await conversation(baseUrl, 's1')
    const client = createConversationStoreClient({ baseUrl, fetch })
    const pieces = Array.from({ length: 200 }, (_, index) => `w${index} `)
    async function * fast (): AsyncGenerator<string> {
      for (const piece of pieces) yield piece
    }

    const result = await client.streamMessage('s1', { role: 'assistant', metadata: { model: 'test' } }, fast())
    t.match(requests.at(-1), { method: 'PATCH', body: '{"status":"completed"}' }, 'finished with a PATCH of its status')
    t.match(result, { status: 'completed', textLength: pieces.join('').length })
    t.notOk('statusReason' in result)
    t.match(result.messageId, /^[0-9a-f-]{36}$/, 'an id is generated')
    t.match(await client.getMessage('s1', result.messageId), { role: 'assistant', status: 'completed', text: pieces.join(''), metadata: { model: 'test' } })

    const deltas = deltaBodies(requests)
    t.equal(deltas.length, result.deltas, 'deltas counts the delta requests')
    t.ok(result.deltas >= 1 && result.deltas < pieces.length / 10, `${result.deltas} deltas for ${pieces.length} pieces`)
    t.same(deltas.map((delta) => (delta as { seq: number }).seq), Array.from({ length: deltas.length }, (_, index) => index + 1), 'seq 1, 2, 3…')
    t.match(JSON.parse(requests[0]?.body ?? 'null'), { messages: [{ id: result.messageId, role: 'assistant', status: 'in_progress' }] }, 'appended in_progress')
  })

  t.test('streamMessage: at most one delta per flushMs, coalescing what arrives meanwhile', async (t) => {
    const baseUrl = await serve(t)
    await conversation(baseUrl, 's2')
    const client = createConversationStoreClient({ baseUrl })
    async function * steady (): AsyncGenerator<string> {
      for (let index = 0; index < 30; index++) {
        yield `p${index} `
        await sleep(10)
      }
    }
    const started = Date.now()
    const result = await client.streamMessage('s2', { id: 'given', role: 'assistant', text: '> ' }, steady(), { flushMs: 150 })
    const elapsedMs = Date.now() - started
    t.match(result, { messageId: 'given', status: 'completed' })
    t.ok(result.deltas <= Math.ceil(elapsedMs / 150) + 1, `${result.deltas} deltas in ${elapsedMs} ms`)
    const text = `> ${Array.from({ length: 30 }, (_, index) => `p${index} `).join('')}`
    t.equal((await client.getMessage('s2', 'given')).text, text, 'the text it started with, then every piece')
    t.equal(result.textLength, text.length)
  })

  t.test('streamMessage: a cancel by another caller ends it incomplete and stops pulling from the source', async (t) => {
    const baseUrl = await serve(t)
    await conversation(baseUrl, 's3')
    const client = createConversationStoreClient({ baseUrl })
    const other = createConversationStoreClient({ baseUrl })
    let pulled = 0
    let returned = false
    async function * endless (): AsyncGenerator<string> {
      try {
        for (let index = 0; index < 1000; index++) {
          if (index === 5) await other.patchMessage('s3', 'cancelled', { status: 'incomplete', statusReason: 'cancelled' })
          pulled++
          yield `t${index} `
          await sleep(5)
        }
      } finally {
        returned = true
      }
    }

    const result = await client.streamMessage('s3', { id: 'cancelled', role: 'assistant' }, endless())
    t.match(result, { messageId: 'cancelled', status: 'incomplete', statusReason: 'cancelled' })
    const stored = await client.getMessage('s3', 'cancelled')
    t.match(stored, { status: 'incomplete', statusReason: 'cancelled' })
    t.equal(stored.text?.length, result.textLength, 'textLength is the stored text')
    t.ok(await until(() => returned), 'the source was told to stop (its finally ran)')
    const seen = pulled
    await sleep(50)
    t.equal(pulled, seen, 'nothing more is pulled')
    t.ok(pulled < 100, `${pulled} pieces pulled of 1000`)
  })

  t.test('streamMessage: an abort cancels the message and rejects with the reason', async (t) => {
    const baseUrl = await serve(t)
    await conversation(baseUrl, 's4')
    const client = createConversationStoreClient({ baseUrl })
    const controller = new AbortController()
    const reason = new Error('the user pressed stop')
    let returned = false
    async function * answer (): AsyncGenerator<string> {
      try {
        for (let index = 0; index < 1000; index++) {
          if (index === 4) controller.abort(reason)
          yield `a${index}`
          await sleep(5)
        }
      } finally {
        returned = true
      }
    }

    const rejected = await client.streamMessage('s4', { id: 'aborted', role: 'assistant' }, answer(), { signal: controller.signal }).catch((error: unknown) => error)
    t.equal(rejected, reason, 'the abort reason itself')
    t.match(await client.getMessage('s4', 'aborted'), { status: 'incomplete', statusReason: 'cancelled', text: 'a0a1a2a3' }, 'what was read is kept')
    t.ok(await until(() => returned), 'the source was told to stop')

    const early = await client.streamMessage('s4', { id: 'never', role: 'assistant' }, answer(), { signal: AbortSignal.abort(reason) }).catch((error: unknown) => error)
    t.equal(early, reason, 'an aborted signal rejects at once')
    t.match(await failure(client.getMessage('s4', 'never')), { code: 'MESSAGE_NOT_FOUND' }, 'and appends nothing')
  })

  t.test('streamMessage: a source that throws marks the message incomplete (error) and rethrows', async (t) => {
    const baseUrl = await serve(t)
    await conversation(baseUrl, 's5')
    const client = createConversationStoreClient({ baseUrl })
    const broken = new Error('the model failed')
    async function * failing (): AsyncGenerator<string> {
      yield 'partial '
      await sleep(5)
      yield 'answer'
      throw broken
    }
    const rejected = await client.streamMessage('s5', { id: 'failed', role: 'assistant' }, failing()).catch((error: unknown) => error)
    t.equal(rejected, broken, 'the source\'s error itself')
    t.match(await client.getMessage('s5', 'failed'), { status: 'incomplete', statusReason: 'error', text: 'partial answer' })
  })

  t.test('streamMessage: a 503 on a delta is retried with the same seq and text, which the service takes as a repeat', async (t) => {
    const store = new FlakyStore({ appendDelta: 1 })
    const { fetch, requests } = recordingFetch()
    const baseUrl = await serve(t, { RETRY_AFTER_SECONDS: '0' }, { store })
    await conversation(baseUrl, 's6')
    const client = createConversationStoreClient({ baseUrl, fetch, retry: { attempts: 3 } })
    async function * two (): AsyncGenerator<string> {
      yield 'Hello'
      await sleep(80)
      yield ', world'
    }
    const result = await client.streamMessage('s6', { id: 'retried', role: 'assistant' }, two())
    t.match(result, { status: 'completed', deltas: 2, textLength: 12 })
    t.same(deltaBodies(requests), [{ seq: 1, text: 'Hello' }, { seq: 1, text: 'Hello' }, { seq: 2, text: ', world' }], 'the retry resends seq 1 as it was')
    t.equal(store.calls.appendDelta, 3)
    t.equal((await client.getMessage('s6', 'retried')).text, 'Hello, world', 'the first try had landed: the repeat added nothing')
  })
})

// Following feeds. A server closing waits for the sockets of its feeds until their next heartbeat.
const feedEnv = { EVENTS_HEARTBEAT_SECONDS: '1' }

/** The events of an iteration until it ends, pushed to `into` as they come. */
async function collect<E> (events: AsyncIterable<E>, into: E[] = []): Promise<E[]> {
  for await (const event of events) into.push(event)
  return into
}

/** Waits up to 5 s for `condition`. */
async function until (condition: () => boolean): Promise<boolean> {
  for (let waited = 0; waited < 5000 && !condition(); waited += 10) await sleep(10)
  return condition()
}

interface FeedRequest { headers: Headers, signal: AbortSignal | undefined, status?: number }

/** A fetch that records the URL of every request, and for a feed its headers, signal and status. */
function feedFetch (): { fetch: typeof fetch, feeds: FeedRequest[], urls: string[], calls: () => number } {
  const feeds: FeedRequest[] = []
  const urls: string[] = []
  return {
    feeds,
    urls,
    calls: () => urls.length,
    fetch: async (input, init) => {
      urls.push(String(input))
      const feed = String(input).includes('/events') ? { headers: new Headers(init?.headers), signal: init?.signal ?? undefined } : undefined
      if (feed !== undefined) feeds.push(feed)
      const response = await fetch(input, init)
      if (feed !== undefined) Object.assign(feed, { status: response.status })
      return response
    }
  }
}

t.test('following a conversation: events()', async (t) => {
  const env = feedEnv
  const messageIds = (events: ConversationEvent[]): string[] =>
    events.flatMap((event) => event.type === 'message.created' ? [event.data.message.id] : [])

  t.test('read, then follow from its lastEventId: each change once, in order, parsed, and the iteration ends after conversation.deleted', async (t) => {
    const { fetch, feeds } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, env), fetch })
    await client.createConversation({ id: 'e1', userId: 'u1', messages: [message('q')] })
    const read = await client.getConversation('e1')
    const following = collect(client.events('e1', { after: read.lastEventId }))
    const started = await client.appendMessages('e1', [{ id: 'r', role: 'assistant', status: 'in_progress' }])
    await client.appendDelta('e1', 'r', { seq: 1, text: 'Hel' })
    await client.appendDelta('e1', 'r', { seq: 2, text: 'lo' })
    const finished = await client.patchMessage('e1', 'r', { status: 'completed' })
    await client.deleteConversation('e1')
    const events = await following

    t.same(events.map((event) => event.type), ['message.created', 'message.delta', 'message.delta', 'message.updated', 'conversation.deleted'])
    t.same(events.map((event) => [event.data.type, event.data.conversationId, event.data.version]),
      [['message.created', 'e1', 2], ['message.delta', 'e1', 3], ['message.delta', 'e1', 4], ['message.updated', 'e1', 5], ['conversation.deleted', 'e1', 5]])
    t.match(events[0]?.data, { message: { id: 'r', role: 'assistant', kind: 'text', status: 'in_progress' } }, 'the message, parsed')
    t.equal(events[0]?.id, started.lastEventId, 'the append answered the position of its event')
    t.same(events.flatMap((event) => event.type === 'message.delta' ? [[event.data.messageId, event.data.seq, event.data.text]] : []), [['r', 1, 'Hel'], ['r', 2, 'lo']])
    t.same(events.flatMap((event) => event.type === 'message.updated' ? [event.data.message] : []), [finished.message], 'as the PATCH answered it')
    t.equal(new Set(events.map((event) => event.id)).size, events.length, 'distinct ids')
    t.equal(feeds.length, 1, 'one stream')
    t.equal(feeds[0]?.headers.get('last-event-id'), read.lastEventId, 'opened from the read\'s position')
    t.equal(feeds[0]?.headers.get('accept'), 'text/event-stream')
  })

  t.test('break after two events, then events() again from the last id: the rest, exactly once; a break aborts the fetch', async (t) => {
    const { fetch, feeds } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, env), fetch })
    await client.createConversation({ id: 'e2', userId: 'u1' })
    const read = await client.getConversation('e2')
    for (let i = 0; i < 5; i++) await client.appendMessages('e2', [message(`a${i}`)])

    const first: ConversationEvent[] = []
    for await (const event of client.events('e2', { after: read.lastEventId })) {
      first.push(event)
      if (first.length === 2) break
    }
    t.same(messageIds(first), ['a0', 'a1'])
    t.equal(feeds[0]?.signal?.aborted, true, 'breaking out aborted the fetch of the stream')

    await client.appendMessages('e2', [message('a5')])
    const rest: ConversationEvent[] = []
    for await (const event of client.events('e2', { after: first[1]?.id })) {
      rest.push(event)
      if (event.type === 'message.created' && event.data.message.id === 'a5') break
    }
    t.same(messageIds(rest), ['a2', 'a3', 'a4', 'a5'], 'after the last id received, then live')
    t.equal(rest.length, 4, 'nothing else, nothing twice')
    t.equal(feeds[1]?.headers.get('last-event-id'), first[1]?.id)
  })

  t.test('when the service ends a stream, the follower reconnects from the last event it got and misses nothing', async (t) => {
    const store = new EndingStore()
    const { fetch, feeds } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, env, { store }), fetch })
    await client.createConversation({ id: 'e3', userId: 'u1' })
    const read = await client.getConversation('e3')
    // No `after`: the follower reads where the conversation stands, so a stream that ends
    // before its first event loses nothing either.
    const events = client.events('e3')[Symbol.asyncIterator]()
    const first = events.next()
    t.ok(await until(() => store.listeners.length === 1), 'the first stream is open')
    store.endFeeds()
    await client.appendMessages('e3', [message('m1')])
    const m1 = (await first).value
    t.match(m1, { type: 'message.created', data: { message: { id: 'm1' } } })

    store.endFeeds()
    await client.appendMessages('e3', [message('m2')])
    t.match((await events.next()).value, { type: 'message.created', data: { message: { id: 'm2' } } })
    await client.deleteConversation('e3')
    t.match((await events.next()).value, { type: 'conversation.deleted' })
    t.same(await events.next(), { done: true, value: undefined }, 'ends after conversation.deleted')
    t.same(feeds.map((feed) => feed.headers.get('last-event-id')), [read.lastEventId, read.lastEventId, m1?.id], 'each stream from the last event received')
  })

  t.test('503 TOO_MANY_FOLLOWERS is tried again after its Retry-After', async (t) => {
    const baseUrl = await serve(t, { ...env, EVENTS_MAX_CONNECTIONS: '1', RETRY_AFTER_SECONDS: '1' })
    const { fetch, feeds } = feedFetch()
    const client = createConversationStoreClient({ baseUrl, fetch })
    await client.createConversation({ id: 'e4', userId: 'u1' })
    const read = await client.getConversation('e4')
    const occupying = await openFeed(`${baseUrl}/v1/conversations/e4/events`)
    t.equal(occupying.status, 200)

    const started = Date.now()
    const events = client.events('e4', { after: read.lastEventId })[Symbol.asyncIterator]()
    const first = events.next()
    t.ok(await until(() => feeds[0]?.status !== undefined), 'refused')
    occupying.close()
    await client.appendMessages('e4', [message('m1')])
    t.match((await first).value, { type: 'message.created', data: { message: { id: 'm1' } } })
    t.same(feeds.map((feed) => feed.status), [503, 200])
    t.ok(Date.now() - started >= 950, 'waited the Retry-After second')
    await events.return()
  })

  t.test('a 404 or a bad position is thrown as a ConversationStoreError, not retried', async (t) => {
    const { fetch, feeds, calls } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, env), fetch, retry: { attempts: 3 } })
    t.match(await failure(collect(client.events('nope'))), { statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
    t.equal(calls(), 1, 'the read of where it stands, once')
    t.match(await failure(collect(client.events('nope', { after: 'x-1' }))), { name: 'ConversationStoreError', statusCode: 404, code: 'CONVERSATION_NOT_FOUND' })
    await client.createConversation({ id: 'e5', userId: 'u1' })
    t.match(await failure(collect(client.events('e5', { after: 'nonsense' }))), { statusCode: 400, code: 'FST_ERR_VALIDATION' })
    t.equal(feeds.length, 2, 'one request for each')
  })

  t.test('a reset when the position is older than what is kept, then the live feed', async (t) => {
    const client = createConversationStoreClient({ baseUrl: await serve(t, { ...env, EVENTS_RETAINED: '2' }) })
    await client.createConversation({ id: 'e6', userId: 'u1' })
    const read = await client.getConversation('e6')
    for (let i = 0; i < 4; i++) await client.appendMessages('e6', [message(`m${i}`)])
    const events = client.events('e6', { after: read.lastEventId })[Symbol.asyncIterator]()
    const reset = (await events.next()).value
    t.match(reset, { type: 'reset', data: { type: 'reset', conversationId: 'e6', version: 5 } }, 're-read, then go on')
    const reread = await client.getConversation('e6')
    t.equal(reset?.id, reread.lastEventId, 'the reset names the position of what a read now answers')
    await client.appendMessages('e6', [message('after')])
    t.match((await events.next()).value, { type: 'message.created', data: { message: { id: 'after' } } })
    await events.return()
  })

  t.test('aborting the signal ends the iteration without an error and aborts the fetch', async (t) => {
    const { fetch, feeds, calls } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, env), fetch })
    await client.createConversation({ id: 'e7', userId: 'u1', messages: [message('before')] })
    const controller = new AbortController()
    const received: ConversationEvent[] = []
    // Without `after`: from where the conversation stands when the iteration starts.
    const following = collect(client.events('e7', { signal: controller.signal }), received)
    t.ok(await until(() => feeds[0]?.status === 200), 'the stream is open')
    await client.appendMessages('e7', [message('m1')])
    t.ok(await until(() => received.length === 1))
    controller.abort(new Error('the user left'))
    t.same(messageIds(await following), ['m1'], 'resolves with what it got: no rejection')
    t.equal(feeds[0]?.signal?.aborted, true, 'the fetch was aborted')

    const before = calls()
    t.same(await collect(client.events('e7', { signal: AbortSignal.abort() })), [], 'an aborted signal ends it at once')
    t.equal(calls(), before, 'without a request')
  })

  t.test('network errors are tried again, with backoff, until the signal aborts', async (t) => {
    const app = await build(t)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    await app.close()
    const { fetch, calls } = feedFetch()
    const client = createConversationStoreClient({ baseUrl, fetch })
    const started = Date.now()
    t.same(await collect(client.events('e8', { after: 'x-1', signal: AbortSignal.timeout(500) })), [], 'ends without an error')
    t.ok(Date.now() - started >= 450)
    // Waits of 100, 200, then 400 ms (past the signal): three tries, or two on a slow machine, never a tight loop.
    t.ok(calls() >= 2 && calls() <= 3, `${calls()} tries in 500 ms`)
  })

  t.test('answers off the contract are INVALID_RESPONSE; events split across chunks still parse', async (t) => {
    const stream = (...chunks: string[]): ReadableStream<Uint8Array> => new ReadableStream({
      start (controller) {
        for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk))
        controller.close()
      }
    })
    const sse = { status: 200, headers: { 'content-type': 'text/event-stream' } }
    const answering = (...responses: Array<() => Response>): ClientOptions['fetch'] => async () => {
      const next = responses.shift()
      if (next === undefined) throw new Error('no more answers')
      return next()
    }
    const events = (...responses: Array<() => Response>) =>
      createConversationStoreClient({ baseUrl: 'http://127.0.0.1:1', fetch: answering(...responses), retry: { attempts: 1, maxDelayMs: 5 } }).events('c', { after: 'p-0' })

    const reset = '{"type":"reset","conversationId":"c","version":1}'
    const deleted = 'id: p-2\nevent: conversation.deleted\ndata: {"type":"conversation.deleted","conversationId":"c","version":1}\n\n'
    const split = await collect(events(() => new Response(stream(': hi\n\nid: p-', '1\nevent: re', `set\ndata: ${reset.slice(0, 9)}`, `${reset.slice(9)}\n`, '\n'), sse),
      () => new Response(stream(deleted), sse)))
    t.same(split.map((event) => [event.id, event.type]), [['p-1', 'reset'], ['p-2', 'conversation.deleted']], 'and a stream that ends is followed by the next')

    const cases: Array<[string, () => Response]> = [
      ['data that is not the type\'s', () => new Response(stream('id: p-1\nevent: message.created\ndata: {"type":"message.created","conversationId":"c","version":2}\n\n'), sse)],
      ['an unknown type', () => new Response(stream('id: p-1\nevent: other\ndata: {"type":"other","conversationId":"c","version":2}\n\n'), sse)],
      ['an event without an id', () => new Response(stream(`event: reset\ndata: ${reset}\n\n`), sse)],
      ['an event whose type is not its data\'s', () => new Response(stream(`id: p-1\nevent: conversation.deleted\ndata: ${reset}\n\n`), sse)],
      ['a 200 that is not an event stream', () => new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } })]
    ]
    for (const [name, response] of cases) t.match(await failure(collect(events(response))), { code: 'INVALID_RESPONSE' }, name)
    t.match(await failure(collect(events(() => new Response('<html>bad gateway</html>', { status: 502 })))), { statusCode: 502, code: 'HTTP_ERROR' }, 'other errors are not retried')
  })
})

t.test('following a user\'s conversations: userEvents()', async (t) => {
  /** What an event is about: its type and conversation (a reset: its user). */
  const about = (event: UserEvent): string => `${event.type} ${event.type === 'reset' ? event.data.userId : event.data.conversationId}`

  t.test('without after, from the list as it stands: each write of the user\'s conversations in order, deltas left out, past a conversation.deleted', async (t) => {
    const { fetch, feeds, urls } = feedFetch()
    const baseUrl = await serve(t, feedEnv)
    const client = createConversationStoreClient({ baseUrl, fetch })
    await client.createConversation({ id: 'before', userId: 'side' })
    const listed = await client.listConversations('side')
    const controller = new AbortController()
    const received: UserEvent[] = []
    const sent = urls.length
    const following = collect(client.userEvents('side', { signal: controller.signal }), received)
    t.ok(await until(() => feeds[0]?.status === 200), 'the stream is open')
    await client.createConversation({ id: 's1', userId: 'side', title: 'First' })
    await client.appendMessages('s1', [{ id: 'r', role: 'assistant', status: 'in_progress' }])
    await client.appendDelta('s1', 'r', { seq: 1, text: 'Hi' })
    await client.patchMessage('s1', 'r', { status: 'completed' })
    await client.patchConversation('s1', { title: 'Renamed' })
    await client.createConversation({ id: 'elsewhere', userId: 'someone-else' })
    await client.deleteConversation('s1')
    await client.createConversation({ id: 's2', userId: 'side' })
    t.ok(await until(() => received.length >= 6))
    controller.abort()
    const events = await following

    t.same(events.map(about), ['conversation.created s1', 'conversation.updated s1', 'conversation.updated s1', 'conversation.updated s1', 'conversation.deleted s1', 'conversation.created s2'],
      'nothing from before, nothing of another user, and the iteration goes on after the deletion')
    t.same(events.map((event) => event.data.type === 'reset' ? -1 : event.data.version), [1, 2, 4, 5, 5, 1], 'the delta (version 3) is not an event')
    t.match(events[0]?.data, { conversation: { id: 's1', userId: 'side', title: 'First', messageCount: 0 } }, 'the summary, parsed')
    t.match(events[3]?.data, { conversation: { title: 'Renamed', messageCount: 1 } })
    t.notOk(events.some((event) => event.type === 'conversation.updated' && 'messages' in event.data.conversation), 'without messages')
    t.same(events[4]?.data, { type: 'conversation.deleted', conversationId: 's1', version: 5, tenantId: 'default' })
    t.equal(new Set(events.map((event) => event.id)).size, events.length, 'distinct ids')
    t.same(urls.slice(sent, sent + 2), [`${baseUrl}/v1/users/side/conversations?limit=1&view=summary`, `${baseUrl}/v1/users/side/events`], '"now" pinned by the smallest list, then the stream')
    t.equal(feeds.length, 1, 'one stream: the service did not end it at the deletion')
    t.equal(feeds[0]?.headers.get('last-event-id'), listed.lastEventId, 'opened from the list\'s position')
  })

  t.test('when the service ends a stream, it reconnects from the last event it got: nothing lost, nothing twice', async (t) => {
    const store = new EndingStore()
    const { fetch, feeds } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, feedEnv, { store }), fetch })
    await client.createConversation({ id: 'd0', userId: 'dropped' })
    const listed = await client.listConversations('dropped')
    const events = client.userEvents('dropped')[Symbol.asyncIterator]()
    const first = events.next()
    t.ok(await until(() => store.listeners.length === 1), 'the first stream is open')
    // Ended before its first event: the write lands while the follower reconnects.
    store.endFeeds()
    await client.createConversation({ id: 'd1', userId: 'dropped' })
    const d1 = (await first).value
    t.match(d1, { type: 'conversation.created', data: { conversationId: 'd1' } })

    store.endFeeds()
    await client.patchConversation('d1', { title: 'Moved on' })
    await client.deleteConversation('d0')
    await client.createConversation({ id: 'd2', userId: 'dropped' })
    const rest: UserEvent[] = []
    for (let i = 0; i < 3; i++) rest.push((await events.next()).value as UserEvent)
    t.same(rest.map(about), ['conversation.updated d1', 'conversation.deleted d0', 'conversation.created d2'], 'the writes made while it reconnected, in order')
    await client.patchConversation('d2', { title: 'Last' })
    t.match((await events.next()).value, { type: 'conversation.updated', data: { conversationId: 'd2', conversation: { title: 'Last' } } }, 'then the next write: no repeat in between')
    await events.return()
    t.same(feeds.map((feed) => feed.headers.get('last-event-id')), [listed.lastEventId, listed.lastEventId, d1?.id], 'each stream from the last event received')
  })

  t.test('after: a list\'s lastEventId, then every write after the list and none before; a user without a feed yet from its start', async (t) => {
    const { fetch, feeds, calls } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, feedEnv), fetch })
    await client.createConversation({ id: 'p1', userId: 'pager', title: 'One' })
    await client.createConversation({ id: 'p2', userId: 'pager', title: 'Two' })
    const page = await client.listConversations('pager', { view: 'summary' })
    t.same(page.items.map((item) => item.title), ['Two', 'One'])
    // Written before the iteration starts, after the list: the feed has them.
    await client.patchConversation('p1', { title: 'One again' })
    await client.createConversation({ id: 'p3', userId: 'pager' })
    await client.deleteConversation('p2')
    const before = calls()
    const received: UserEvent[] = []
    // The timeout ends a follower that missed the writes, so that the test fails rather than waits.
    for await (const event of client.userEvents('pager', { after: page.lastEventId, signal: AbortSignal.timeout(5000) })) {
      received.push(event)
      if (received.length === 3) break
    }
    t.same(received.map(about), ['conversation.updated p1', 'conversation.created p3', 'conversation.deleted p2'])
    t.equal(feeds[0]?.headers.get('last-event-id'), page.lastEventId)
    t.equal(calls(), before + 1, 'the stream only: `after` needs no read')

    const fresh = await client.listConversations('newcomer')
    t.same(fresh.items, [])
    await client.createConversation({ id: 'n1', userId: 'newcomer' })
    const events = client.userEvents('newcomer', { after: fresh.lastEventId, signal: AbortSignal.timeout(5000) })[Symbol.asyncIterator]()
    t.match((await events.next()).value, { type: 'conversation.created', data: { conversationId: 'n1' } }, 'the position of an empty list replays the feed from its start')
    await events.return()
  })

  t.test('aborting the signal ends the iteration without an error and aborts the fetch', async (t) => {
    const { fetch, feeds, calls } = feedFetch()
    const client = createConversationStoreClient({ baseUrl: await serve(t, feedEnv), fetch })
    const controller = new AbortController()
    const received: UserEvent[] = []
    const following = collect(client.userEvents('leaving', { signal: controller.signal }), received)
    t.ok(await until(() => feeds[0]?.status === 200), 'the stream is open')
    await client.createConversation({ id: 'a1', userId: 'leaving' })
    t.ok(await until(() => received.length === 1))
    controller.abort(new Error('the user left'))
    t.same((await following).map(about), ['conversation.created a1'], 'resolves with what it got: no rejection')
    t.equal(feeds[0]?.signal?.aborted, true, 'the fetch was aborted')

    const before = calls()
    t.same(await collect(client.userEvents('leaving', { signal: AbortSignal.abort() })), [], 'an aborted signal ends it at once')
    t.equal(calls(), before, 'without a request')
  })

  t.test('a position the service never gave is 400, another user\'s feed with a delegated token 403: thrown, not retried', async (t) => {
    const { startIdentityProvider } = await import('./helpers/identity-provider.js')
    const { authEnv } = await import('./helpers/access-suite.js')
    const idp = await startIdentityProvider()
    t.teardown(() => idp.close())
    const { fetch, feeds } = feedFetch()
    const getToken = async (): Promise<string> => await idp.sign({ azp: 'app-front-end', roles: undefined, scp: 'user_impersonation', oid: 'alice' })
    const alice = createConversationStoreClient({ baseUrl: await serve(t, { ...feedEnv, ...authEnv(idp) }), fetch, getToken, retry: { attempts: 3 } })
    t.match(await failure(collect(alice.userEvents('bob'))), { statusCode: 403, code: 'FORBIDDEN' })
    t.match(await failure(collect(alice.userEvents('alice', { after: 'nonsense' }))), { statusCode: 400, code: 'FST_ERR_VALIDATION' })
    t.equal(feeds.length, 2, 'one request for each')
  })
})
