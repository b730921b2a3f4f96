import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { StoreUnavailableError } from '../src/errors.js'
import { loggerOptions } from '../src/logging.js'
import { instrumentStore, storeErrorKind } from '../src/store/instrumented-store.js'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import { redisEnv } from './helpers/backends.js'
import { build } from './helpers/build.js'
import { countTokens } from './helpers/tokens.js'
import { startRedis } from './helpers/redis-server.js'

const limits = { ttlSeconds: 60, maxMessagesPerConversation: 100 }

t.test('metrics', async (t) => {
  t.test('/metrics reports requests by route pattern, store operations and process figures', async (t) => {
    const app = await build(t, { MEMORY_MAX_CONVERSATIONS: '2' })
    for (const id of ['secret-id-1', 'secret-id-2', 'secret-id-3']) {
      await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1' } })
      await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
    }
    await app.inject({ method: 'GET', url: '/v1/conversations/secret-id-1' }) // evicted
    await app.inject({ method: 'GET', url: '/no/such/route' })
    const response = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(response.statusCode, 200)
    t.match(response.headers['content-type'], /^text\/plain/)
    const text = response.body
    t.match(text, /http_requests_total\{method="POST",route="\/v1\/conversations",status_code="201"\} 3/)
    t.match(text, /http_requests_total\{method="GET",route="\/v1\/conversations\/:id",status_code="200"\} 3/)
    t.match(text, /http_requests_total\{method="GET",route="\/v1\/conversations\/:id",status_code="404"\} 1/, 'the evicted one')
    t.match(text, /http_requests_total\{method="GET",route="unmatched",status_code="404"\} 1/)
    t.match(text, /http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/conversations",status_code="201"\}/)
    t.match(text, /store_operation_duration_seconds_count\{operation="create",backend="memory"\} 3/)
    t.match(text, /store_operation_duration_seconds_count\{operation="get",backend="memory"\} 4/)
    t.match(text, /memory_store_conversations 2/)
    t.match(text, /memory_store_evictions 1/)
    t.match(text, /process_cpu_user_seconds_total/)
    t.match(text, /nodejs_eventloop_lag_seconds/)
    t.notMatch(text, /secret-id|no\/such/, 'no raw ids or paths in labels')
  })

  t.test('store errors are counted by kind', async (t) => {
    const timeout = new StoreUnavailableError({ cause: new Error('Command timed out') })
    const refused = new StoreUnavailableError({ cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) })
    let next: Error = timeout
    class FailingStore extends MemoryConversationStore {
      override async get (): Promise<undefined> { throw next }
    }
    const app = await build(t, {}, { store: new FailingStore({ maxConversations: 1, limits, countTokens }) })
    await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    next = refused
    await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    next = new TypeError('bug')
    await app.inject({ method: 'GET', url: '/v1/conversations/a' })
    await app.inject({ method: 'GET', url: '/v1/conversations/missing-is-not-an-error' })
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    t.match(text, /store_errors_total\{operation="get",backend="memory",kind="timeout"\} 1/)
    t.match(text, /store_errors_total\{operation="get",backend="memory",kind="connection"\} 1/)
    t.match(text, /store_errors_total\{operation="get",backend="memory",kind="other"\} 2/)
  })

  t.test('the error kinds: client errors are not store errors', async (t) => {
    t.equal(storeErrorKind(Object.assign(new Error('x'), { statusCode: 404 })), undefined)
    t.equal(storeErrorKind(new StoreUnavailableError({ cause: new Error('Command timed out') })), 'timeout')
    t.equal(storeErrorKind(new StoreUnavailableError()), 'connection')
    t.equal(storeErrorKind(new Error('x')), 'other')
  })

  t.test('an instrumented store behaves as the store', async (t) => {
    const seen: string[] = []
    const store = instrumentStore(new MemoryConversationStore({ maxConversations: 5, limits, countTokens }), {
      operation: (operation) => { seen.push(operation) },
      error: () => {}
    })
    t.equal(store.backend, 'memory')
    await store.create('a', { userId: 'u', tenantId: 'default', status: 'active', messages: [] })
    t.same(store.stats(), { conversations: 1, evictions: 0, viewCacheBytes: 0 })
    await t.rejects(store.create('a', { userId: 'u', tenantId: 'default', status: 'active', messages: [] }), { code: 'CONVERSATION_EXISTS' })
    t.same(seen, ['create', 'create'])
  })

  t.test('the Redis connection state is a gauge', async (t) => {
    const server = await startRedis()
    t.teardown(() => server.close())
    const app = await build(t, redisEnv(server))
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    t.match(text, /redis_connection_state\{state="ready"\} 1/)
    t.match(text, /redis_connection_state\{state="reconnecting"\} 0/)
  })

  t.test('METRICS_ENABLED=false removes /metrics', async (t) => {
    const app = await build(t, { METRICS_ENABLED: 'false' })
    t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
    t.equal((await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u' } })).statusCode, 201)
  })
})

t.test('request ids', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await build(t, {}, { logger: { ...loggerOptions('info'), stream } })

  t.test('the caller’s x-request-id is used, echoed and logged', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/v1/conversations/none', headers: { 'x-request-id': 'caller-42' } })
    t.equal(response.headers['x-request-id'], 'caller-42')
    const logged = lines.filter((line) => line.includes('"reqId":"caller-42"'))
    t.ok(logged.length >= 2, 'incoming, error and completion lines all carry it')
  })

  t.test('else the trace id of traceparent', async (t) => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const response = await app.inject({ method: 'GET', url: '/health/live', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
    t.equal(response.headers['x-request-id'], traceId)
  })

  t.test('else a new UUID; unsafe ids are not taken', async (t) => {
    for (const headers of [{}, { 'x-request-id': 'bad id\nforged log line' }, { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }]) {
      const response = await app.inject({ method: 'GET', url: '/health/live', headers })
      t.match(response.headers['x-request-id'], /^[0-9a-f-]{36}$/)
    }
  })
})

t.test('load shedding answers 503 while the event loop lags, but liveness keeps answering', async (t) => {
  const app = await build(t, { MAX_EVENT_LOOP_DELAY_MS: '100', RETRY_AFTER_SECONDS: '3' })
  t.equal((await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u' } })).statusCode, 201)
  // Block the event loop on purpose, past the sampling interval of the monitor.
  const blockedUntil = Date.now() + 1500
  while (Date.now() < blockedUntil) { /* busy */ }
  await sleep(20)
  const shed = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u' } })
  t.equal(shed.statusCode, 503)
  t.equal(shed.headers['retry-after'], '3')
  t.match(shed.json(), { statusCode: 503, code: 'FST_UNDER_PRESSURE' })
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
  // Once the loop is idle again, the next sample lifts the pressure.
  let recovered = false
  for (let i = 0; i < 40 && !recovered; i++) {
    await sleep(100)
    recovered = (await app.inject({ method: 'GET', url: '/v1/users/u/conversations' })).statusCode === 200
  }
  t.ok(recovered, 'serves again once the lag is gone')
})
