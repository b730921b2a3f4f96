import t from 'tap'
import { StoreUnavailableError, CorruptRecordError } from '../src/errors.js'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import type { ConversationPage, ListOptions, TaggedView } from '../src/store/types.js'
import { build } from './helpers/build.js'
import { countTokens } from './helpers/tokens.js'

const limits = { ttlSeconds: 60, maxMessagesPerConversation: 100 }

/** A memory store whose reads fail the way the test says. */
class FailingStore extends MemoryConversationStore {
  constructor (private readonly failure: () => Promise<never>) {
    super({ maxConversations: 10, limits, countTokens })
  }

  override async get (): Promise<TaggedView | undefined> { return await this.failure() }
  override async ping (): Promise<never> { return await this.failure() }
}

t.test('GET / names the service for Always On', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/' })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { name: 'conversation-store', version: /^\d+\.\d+\.\d+/ })
})

t.test('health', async (t) => {
  t.test('/health reports the store up', async (t) => {
    const app = await build(t)
    const response = await app.inject({ method: 'GET', url: '/health' })
    t.equal(response.statusCode, 200)
    t.match(response.json(), { status: 'ok', backend: 'memory', store: { status: 'up', latencyMs: 0 } })
    t.same((await app.inject({ method: 'GET', url: '/health/live' })).json(), { status: 'ok' })
  })

  t.test('/health answers 503 within its own timeout when the store hangs', async (t) => {
    const store = new FailingStore(() => new Promise<never>(() => {}))
    const app = await build(t, { HEALTH_TIMEOUT_MS: '50' }, { store })
    const started = Date.now()
    const response = await app.inject({ method: 'GET', url: '/health' })
    t.equal(response.statusCode, 503)
    t.same(response.json(), { status: 'unavailable', backend: 'memory', reason: 'store', store: { status: 'down' } })
    t.ok(Date.now() - started < 5000, 'does not wait on the store')
    t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'liveness is independent')
  })

  t.test('/health answers 503 when the store fails', async (t) => {
    const app = await build(t, {}, { store: new FailingStore(() => Promise.reject(new StoreUnavailableError())) })
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)
  })
})

t.test('errors', async (t) => {
  t.test('a store outage is 503 STORE_UNAVAILABLE with Retry-After', async (t) => {
    const app = await build(t, { RETRY_AFTER_SECONDS: '3' }, { store: new FailingStore(() => Promise.reject(new StoreUnavailableError())) })
    const response = await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    t.equal(response.statusCode, 503)
    t.equal(response.headers['retry-after'], '3')
    t.match(response.json(), { statusCode: 503, code: 'STORE_UNAVAILABLE', error: 'Service Unavailable' })
  })

  t.test('a bug is 500 with no detail', async (t) => {
    const app = await build(t, {}, { store: new FailingStore(() => Promise.reject(new TypeError('secret internals at /srv/app.js:1'))) })
    const response = await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    t.equal(response.statusCode, 500)
    t.same(response.json(), { statusCode: 500, code: 'INTERNAL_SERVER_ERROR', error: 'Internal Server Error', message: 'Internal Server Error' })
    t.notOk(response.headers['retry-after'])
  })

  t.test('a corrupt record is 500 CORRUPT_RECORD', async (t) => {
    const app = await build(t, {}, { store: new FailingStore(() => Promise.reject(new CorruptRecordError('a'))) })
    const response = await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    t.equal(response.statusCode, 500)
    t.equal(response.json().code, 'CORRUPT_RECORD')
  })

  t.test('an unknown route is a JSON 404', async (t) => {
    const app = await build(t)
    const response = await app.inject({ method: 'GET', url: '/v2/nothing?x=1' })
    t.equal(response.statusCode, 404)
    t.same(response.json(), { statusCode: 404, code: 'FST_ERR_NOT_FOUND', error: 'Not Found', message: 'Route GET /v2/nothing not found' })
  })
})

t.test('logs carry no stack traces or credentials', async (t) => {
  const lines: string[] = []
  const { Writable } = await import('node:stream')
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const store = new FailingStore(() => Promise.reject(new TypeError('boom')))
  const { loggerOptions } = await import('../src/logging.js')
  const app = await build(t, { API_KEYS: 'topsecret' }, { store, logger: { ...loggerOptions('info'), stream } })
  await app.inject({ method: 'GET', url: '/v1/conversations/a', headers: { authorization: 'Bearer topsecret' } })
  const log = lines.join('')
  t.match(log, /"type":"TypeError","message":"boom"/)
  t.notMatch(log, /stack/)
  t.notMatch(log, /topsecret/)
})

t.test('the app logger serializes errors without stacks', async (t) => {
  const { serializeError, loggerOptions } = await import('../src/logging.js')
  t.same(serializeError(Object.assign(new Error('m'), { code: 'C', statusCode: 503 })), { type: 'Error', message: 'm', code: 'C', statusCode: 503 })
  t.same(serializeError('text'), { type: 'string', message: 'text' })
  t.same(serializeError(new Error('outer', { cause: new Error('Command timed out') })), {
    type: 'Error', message: 'outer', cause: { type: 'Error', message: 'Command timed out' }
  })
  t.match(loggerOptions('warn'), { level: 'warn' })
})

t.test('API keys', async (t) => {
  const app = await build(t, { API_KEYS: 'alpha,beta' })
  const get = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/v1/users/u1/conversations', headers })

  // RFC 6750: a request without a token is told the scheme; a token that fails is invalid_token.
  for (const [name, headers, challenge] of [
    ['no Authorization header', {}, 'Bearer'],
    ['a wrong key', { authorization: 'Bearer gamma' }, 'Bearer error="invalid_token"'],
    ['a key prefix', { authorization: 'Bearer alph' }, 'Bearer error="invalid_token"'],
    ['another scheme', { authorization: 'Basic alpha' }, 'Bearer']
  ] as const) {
    t.test(`rejects ${name} with 401`, async (t) => {
      const response = await get(headers)
      t.equal(response.statusCode, 401)
      t.equal(response.headers['www-authenticate'], challenge)
      t.match(response.json(), { statusCode: 401, code: 'UNAUTHORIZED' })
    })
  }

  t.test('accepts every configured key', async (t) => {
    t.equal((await get({ authorization: 'Bearer alpha' })).statusCode, 200)
    t.equal((await get({ authorization: 'bearer beta' })).statusCode, 200)
  })

  t.test('the OpenAPI document asks for the bearer token on /v1 only', async (t) => {
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
    t.same(document.paths['/v1/conversations'].post.security, [{ apiKey: [] }])
    t.ok('403' in document.paths['/v1/conversations'].post.responses, 'a caller without the role gets 403')
    t.notOk(document.paths['/health'].get.security)
  })

  t.test('leaves health, root and docs open', async (t) => {
    for (const url of ['/', '/health', '/health/live', '/openapi.json', '/docs/']) {
      t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
    }
  })

  t.test('a 401 changes nothing', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: 'c1', userId: 'u1' } })
    t.equal(response.statusCode, 401)
    const read = await app.inject({ method: 'GET', url: '/v1/conversations/c1', headers: { authorization: 'Bearer alpha' } })
    t.equal(read.statusCode, 404)
  })
})

t.test('the OpenAPI document describes every route, status and the error body', async (t) => {
  const app = await build(t)
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.equal(document.openapi, '3.1.0')
  const routes = Object.entries(document.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)
    .flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => [`${method.toUpperCase()} ${path}`, Object.keys(operation.responses)] as const))
  const byRoute = Object.fromEntries(routes)
  t.same(Object.keys(byRoute).sort(), [
    'DELETE /v1/conversations/{id}', 'DELETE /v1/conversations/{id}/messages', 'DELETE /v1/conversations/{id}/messages/{messageId}', 'DELETE /v1/conversations/{id}/workflow-state',
    'DELETE /v1/users/{userId}/conversations', 'GET /', 'GET /health', 'GET /health/live', 'GET /v1/conversations/{id}',
    'GET /v1/conversations/{id}/events',
    'GET /v1/conversations/{id}/messages', 'GET /v1/conversations/{id}/messages/{messageId}', 'GET /v1/conversations/{id}/workflow-state',
    'GET /v1/users/{userId}/conversations', 'GET /v1/users/{userId}/events', 'GET /v1/users/{userId}/export', 'PATCH /v1/conversations/{id}', 'PATCH /v1/conversations/{id}/messages/{messageId}',
    'POST /v1/conversations', 'POST /v1/conversations/{id}/fork', 'POST /v1/conversations/{id}/messages',
    'POST /v1/conversations/{id}/messages/{messageId}/deltas', 'POST /v1/users/{userId}/import',
    'PUT /v1/conversations/{id}', 'PUT /v1/conversations/{id}/workflow-state'
  ])
  t.same(byRoute['POST /v1/users/{userId}/import'], ['200', '400', '401', '413', '415', '500', '503'])
  t.same(byRoute['PUT /v1/conversations/{id}'], ['200', '201', '400', '401', '409', '412', '413', '415', '500', '503'])
  t.same(byRoute['GET /v1/conversations/{id}'], ['200', '304', '400', '401', '404', '500', '503'])
  t.same(byRoute['GET /v1/conversations/{id}/workflow-state'], ['200', '304', '400', '401', '404', '500', '503'])
  t.same(byRoute['GET /v1/users/{userId}/events'], ['200', '400', '401', '403', '500', '503'], 'a user\'s feed is never 404')
  t.same(byRoute['POST /v1/conversations/{id}/messages/{messageId}/deltas'], ['200', '400', '401', '404', '409', '412', '413', '415', '500', '503'])
  t.match(document.components.schemas.Message, { required: ['id', 'role', 'kind', 'createdAt', 'status'] }, 'every message answer carries status')
  t.match(document.components.schemas.Error, { required: ['statusCode', 'code', 'error', 'message'] })
  t.ok('Conversation' in document.components.schemas, 'the Conversation schema is a component')
  for (const [path, data] of [['/v1/conversations/{id}/events', 'ConversationFeedEventData'], ['/v1/users/{userId}/events', 'UserFeedEventData']] as const) {
    const answer = Object.values(document.paths[path].get.responses['200'].content as Record<string, { schema: Record<string, unknown> }>)[0]?.schema
    t.same(answer?.['x-event-data'], { $ref: `#/components/schemas/${data}` }, `${path} names the schema of its events' data`)
    t.ok(document.components.schemas[data].oneOf ?? document.components.schemas[data].anyOf, `${data} is a component: one schema per event type`)
  }
})

t.test('a list item that cannot be serialised is skipped and logged, and the rest of the page answers', async (t) => {
  // A record that passed every check but still cannot become JSON: one bad record must
  // never make a whole user list fail.
  class UnserialisableStore extends MemoryConversationStore {
    override async listByUser (userId: string, options: ListOptions): Promise<ConversationPage> {
      const page = await super.listByUser(userId, options)
      const [first, ...rest] = page.items
      return { ...page, items: first === undefined ? [] : [{ ...first, metadata: { n: 10n } as unknown as Record<string, unknown> }, ...rest] }
    }
  }
  const lines: string[] = []
  const stream = { write: (line: string) => { lines.push(line) } }
  const app = await build(t, {}, { store: new UnserialisableStore({ maxConversations: 10, limits, countTokens }), logger: { level: 'error', stream } })
  for (const id of ['a', 'b', 'c']) await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages: [{ role: 'user', text: 'private words' }] } })
  for (const view of ['full', 'summary']) {
    const response = await app.inject({ method: 'GET', url: `/v1/users/u1/conversations?view=${view}` })
    t.equal(response.statusCode, 200, `the ${view} list answers`)
    t.same(response.json().items.map((item: { id: string }) => item.id), ['b', 'a'], 'without the item that cannot be serialised')
    t.equal(response.json().nextCursor, null)
  }
  const skipped = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === '[STORE] record skipped: it cannot be serialised')
  t.equal(skipped.length, 2, 'each skip is logged')
  t.equal(skipped[0]?.conversationId, 'c')
  t.notMatch(lines.join(''), /private words/, 'without the message text')
})
