import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { create, unique } from '../../helpers/api-suite.js'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import { freePort, makeCertificates, startRedis } from '../../helpers/redis-server.js'

// The 503 contract against a real redis-server that the tests pause, stop, kill and restart.
// A hung request would fail the test by its timeout; no assertion measures time.

const FAST = { REDIS_TIMEOUT: '300', HEALTH_TIMEOUT_MS: '300', RETRY_AFTER_SECONDS: '2' }
const options = { timeout: 30_000 }

function assertUnavailable (t: Test, response: { statusCode: number, headers: Record<string, unknown>, json: () => any }): void {
  t.equal(response.statusCode, 503)
  t.equal(response.headers['retry-after'], '2')
  t.match(response.json(), { statusCode: 503, code: 'STORE_UNAVAILABLE' })
}

/** Polls /health until it answers 200; Redis reconnects with backoff, so this takes a moment. */
async function waitUntilHealthy (app: FastifyInstance): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await app.inject({ method: 'GET', url: '/health' })).statusCode === 200) return
    await sleep(100)
  }
  throw new Error('the service did not recover')
}

t.test('a paused Redis (CLIENT PAUSE) gives 503, then everything written before is there', options, async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  const app = await build(t, { ...redisEnv(server), ...FAST })
  const conversation = await create(app, { userId: 'u1', messages: [{ id: 'm1', role: 'user' }] })

  await server.pause(1500)
  assertUnavailable(t, await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id as string}` }))
  assertUnavailable(t, await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } }))
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)

  await waitUntilHealthy(app)
  const read = await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id as string}` })
  t.equal(read.statusCode, 200)
  t.same(read.json().messages.map((m: { id: string }) => m.id), ['m1'])
})

t.test('a stalled Redis (SIGSTOP) gives 503 and /health says so; it recovers on SIGCONT', options, async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  const app = await build(t, { ...redisEnv(server), ...FAST })
  const conversation = await create(app, { userId: 'u1' })

  await server.stop()
  assertUnavailable(t, await app.inject({ method: 'POST', url: `/v1/conversations/${conversation.id as string}/messages`, payload: { messages: [{ role: 'user' }] } }))
  assertUnavailable(t, await app.inject({ method: 'GET', url: '/v1/users/u1/conversations' }))
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 503)
  t.match(health.json(), { status: 'unavailable', backend: 'redis', store: { status: 'down' } })

  await server.resume()
  await waitUntilHealthy(app)
  const read = await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id as string}` })
  t.equal(read.statusCode, 200)
  t.equal(read.json().userId, 'u1')
})

t.test('a killed Redis gives fast 503s; the service reconnects by itself after a restart', options, async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  const app = await build(t, { ...redisEnv(server), ...FAST })
  await create(app, { userId: 'u1' })

  await server.kill()
  await sleep(100)
  for (let i = 0; i < 5; i++) {
    assertUnavailable(t, await app.inject({ method: 'GET', url: `/v1/conversations/${unique('c')}` }))
  }
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)

  await server.restart()
  await waitUntilHealthy(app)
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } })
  t.equal(created.statusCode, 201, 'writes work again without a restart of the service')
})

t.test('requests in flight when Redis dies end with 503, not a hang', options, async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  const app = await build(t, { ...redisEnv(server), ...FAST, REDIS_TIMEOUT: '2000' })
  const { id } = await create(app, { userId: 'u1' })
  await server.stop()
  // These are sent and wait for an answer that never comes; then the connection dies.
  const inFlight = Array.from({ length: 5 }, (_, i) => i % 2 === 0
    ? app.inject({ method: 'GET', url: `/v1/conversations/${id as string}` })
    : app.inject({ method: 'POST', url: `/v1/conversations/${id as string}/messages`, payload: { messages: [{ role: 'user' }] } }))
  await sleep(200)
  await server.kill()
  for (const response of await Promise.all(inFlight)) assertUnavailable(t, response)
  await server.restart()
  await waitUntilHealthy(app)
})

t.test('an unreachable Redis at start-up does not stop the service; it recovers when Redis comes', options, async (t) => {
  const port = await freePort()
  const env = { ...FAST, REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_ALLOW_PLAINTEXT: 'true' }
  const app = await build(t, env)
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)
  assertUnavailable(t, await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } }))

  const server = await startRedis({ port })
  t.teardown(() => server.close())
  await waitUntilHealthy(app)
  t.equal((await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } })).statusCode, 201)
})

t.test('a certificate that cannot be verified stops start-up, without the URL in the message', options, async (t) => {
  const server = await startRedis({ tls: true, password: 'pw-not-for-logs' })
  const otherCa = await mkdtemp(join(tmpdir(), 'untrusted-ca-'))
  t.teardown(async () => {
    await server.close()
    await rm(otherCa, { recursive: true, force: true })
  })
  const { caFile } = await makeCertificates(otherCa)
  for (const env of [{ REDIS_TLS_CA_FILE: caFile }, { REDIS_TLS_CA_FILE: '' }]) {
    const error = await build(t, { ...redisEnv(server), ...FAST, ...env }).then(() => undefined, (e: Error) => e)
    t.ok(error, 'start-up fails')
    t.match(error?.message, /^Redis refused the connection/)
    t.notMatch(error?.message, /pw-not-for-logs|rediss:/)
  }
})
