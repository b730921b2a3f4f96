import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { authEnv, callersFile, CALLERS, OPS_KEY } from './helpers/access-suite.js'
import { redisEnv } from './helpers/backends.js'
import { build } from './helpers/build.js'
import { startIdentityProvider } from './helpers/identity-provider.js'
import { redisCli, startRedis } from './helpers/redis-server.js'

// Per-caller limits (@fastify/rate-limit): counted in Redis, so two instances share them;
// counted in the process without Redis. Health and docs are never limited.

const idp = await startIdentityProvider()
t.teardown(() => idp.close())
const server = await startRedis()
t.teardown(() => server.close())

// The reader may send 2 a minute; everyone else RATE_LIMIT_PER_MINUTE.
const file = callersFile({ callers: CALLERS.callers.map((caller) => caller.name === 'reader' ? { ...caller, ratePerMinute: 2 } : caller) })
const env = { ...authEnv(idp, file), RATE_LIMIT_PER_MINUTE: '3' }
const list = { method: 'GET' as const, url: '/v1/users/u1/conversations' }

async function statuses (app: FastifyInstance, token: string, count: number): Promise<number[]> {
  const answers: number[] = []
  for (let i = 0; i < count; i++) answers.push((await app.inject({ ...list, headers: { authorization: `Bearer ${token}` } })).statusCode)
  return answers
}

t.test('two instances on one Redis share each caller\'s limit', async (t) => {
  const shared = { ...env, ...redisEnv(server), REDIS_KEY_PREFIX: `rate-${process.pid}:` }
  const [one, two] = [await build(t, shared), await build(t, shared)]
  const writer = await idp.sign({ azp: 'app-writer' })
  t.same([...await statuses(one, writer, 2), ...await statuses(two, writer, 1)], [200, 200, 200], 'three in all may pass')
  const refused = await two.inject({ ...list, headers: { authorization: `Bearer ${writer}` } })
  t.equal(refused.statusCode, 429, 'the fourth is refused on either instance')
  t.match(refused.json(), { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: /At most 3 requests a minute/ })
  t.match(refused.headers, { 'retry-after': /^\d+$/, 'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'ratelimit-reset': /^\d+$/ })
  t.equal((await statuses(one, writer, 1))[0], 429)

  t.same(await statuses(one, await idp.sign({ azp: 'app-reader' }), 3), [200, 200, 429], 'a caller\'s own limit from the callers file')
  t.same(await statuses(two, await idp.sign({ azp: 'app-admin' }), 3), [200, 200, 200], 'each caller has its own count')
  const keys = await redisCli(server, ['--scan', '--pattern', `rate-${process.pid}:rate:*`])
  t.equal(keys.stdout.trim().split('\n').length, 3, 'the counts live in Redis, under the key prefix, one per caller')

  for (const url of ['/health', '/health/live', '/openapi.json']) {
    const answers = await Promise.all([1, 2, 3, 4, 5].map(async () => (await one.inject({ method: 'GET', url })).statusCode))
    t.same(answers, [200, 200, 200, 200, 200], `${url} is never limited`)
  }
})

t.test('without Redis each instance counts for itself', async (t) => {
  const app = await build(t, env)
  const ops = await statuses(app, OPS_KEY, 4)
  t.same(ops, [200, 200, 200, 429])
  const other = await build(t, env)
  t.same(await statuses(other, OPS_KEY, 1), [200], 'another instance has its own count')
})

t.test('API_KEYS and callers without authentication are limited too', async (t) => {
  t.same(await statuses(await build(t, { API_KEYS: 'k', RATE_LIMIT_PER_MINUTE: '2' }), 'k', 3), [200, 200, 429], 'a key of API_KEYS')
  const open = await build(t, { RATE_LIMIT_PER_MINUTE: '2' })
  const answers = await Promise.all([1, 2, 3].map(async () => (await open.inject(list)).statusCode))
  t.same(answers.sort(), [200, 200, 429], 'with authentication off, all requests are one caller')
})

t.test('without RATE_LIMIT_PER_MINUTE only callers with their own limit are limited', async (t) => {
  const app = await build(t, authEnv(idp, file))
  t.same(await statuses(app, OPS_KEY, 5), [200, 200, 200, 200, 200])
  t.same(await statuses(app, await idp.sign({ azp: 'app-reader' }), 3), [200, 200, 429])
})
