import type { Redis } from 'ioredis'
import t from 'tap'
import { isFatalConnectionError, reconnectDelay, redisOptions } from '../../../src/store/redis/connection.js'
import { guardRedisCall, isRedisUnavailable } from '../../../src/store/redis/errors.js'

const logged: unknown[] = []
const log = { warn: (...args: unknown[]) => logged.push(args) } as never

t.test('reconnect backoff is exponential, capped at 10 s, jittered, and never gives up', async (t) => {
  t.equal(reconnectDelay(1, () => 0), 100)
  t.equal(reconnectDelay(1, () => 1), 200)
  t.equal(reconnectDelay(3, () => 1), 800)
  t.equal(reconnectDelay(50, () => 1), 10_000)
  t.equal(reconnectDelay(1_000_000, () => 0), 5_000)
  const options = redisOptions({ url: 'rediss://h', tls: true, timeoutMs: 500, keyPrefix: 'p:', keepAliveMs: 1000, cluster: false, auth: 'password' as const }, log)
  const delay = options.retryStrategy?.(4)
  t.type(delay, 'number')
  t.equal(logged.length, 1, 'each attempt is logged')
})

t.test('READONLY (a failover) makes the client reconnect and resend; other errors do not', async (t) => {
  const { reconnectOnError } = redisOptions({ url: 'redis://h', tls: false, timeoutMs: 500, keyPrefix: 'p:', keepAliveMs: 1000, cluster: false, auth: 'password' as const }, log)
  t.equal(reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")), 2)
  t.equal(reconnectOnError?.(new Error('ERR unknown command')), false)
})

t.test('options bound every command and verify certificates', async (t) => {
  const options = redisOptions({ url: 'rediss://h', tls: true, timeoutMs: 700, keyPrefix: 'p:', keepAliveMs: 1000, cluster: false, auth: 'password' as const }, log)
  t.match(options, { commandTimeout: 700, connectTimeout: 700, maxRetriesPerRequest: 1, enableAutoPipelining: true, tls: {} })
  t.notOk((options.tls as { rejectUnauthorized?: boolean }).rejectUnauthorized === false)
  t.notOk('tls' in redisOptions({ url: 'redis://h', tls: false, timeoutMs: 1, keyPrefix: '', keepAliveMs: 1000, cluster: false, auth: 'password' as const }, log))
})

t.test('fatal start-up errors are the ones retrying cannot fix', async (t) => {
  t.ok(isFatalConnectionError(Object.assign(new Error('x'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' })))
  t.ok(isFatalConnectionError(Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' })))
  t.ok(isFatalConnectionError(new Error('WRONGPASS invalid username-password pair')))
  t.notOk(isFatalConnectionError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })))
})

t.test('exactly the Redis and connection failures count as unavailable', async (t) => {
  const unavailable = [
    new Error('Command timed out'),
    new Error('Connection is closed.'),
    new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }),
    Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
    new Error('CLUSTERDOWN The cluster is down'),
    new Error('MOVED 6120 127.0.0.1:32911'),
    new Error("OOM command not allowed when used memory > 'maxmemory'."),
    new Error('ERR max number of clients reached'),
    new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'),
    new Error('TRYAGAIN Multiple keys request during rehashing of slot'),
    new Error('LOADING Redis is loading the dataset in memory'),
    new Error('READONLY You can\'t write against a read only replica.'),
    Object.assign(new Error('Failed to refresh slots cache.'), { name: 'ClusterAllFailedError' })
  ]
  for (const error of unavailable) t.ok(isRedisUnavailable(error), error.message)
  for (const error of [new TypeError('x is undefined'), new Error('ERR syntax error'), 'text']) {
    t.notOk(isRedisUnavailable(error), String(error))
  }
})

t.test('guardRedisCall maps outages to STORE_UNAVAILABLE and lets bugs through', async (t) => {
  const ready = { status: 'ready' } as Redis
  t.equal(await guardRedisCall(ready, 100, async () => 'ok'), 'ok')
  await t.rejects(guardRedisCall(ready, 100, async () => { throw new Error('Connection is closed.') }), { code: 'STORE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(guardRedisCall(ready, 20, () => new Promise(() => {})), { code: 'STORE_UNAVAILABLE' }, 'a stuck operation ends at the deadline')
  await t.rejects(guardRedisCall(ready, 100, async () => { throw new TypeError('bug') }), { name: 'TypeError' })
  let called = false
  await t.rejects(guardRedisCall({ status: 'reconnecting' } as Redis, 100, async () => { called = true }), { code: 'STORE_UNAVAILABLE' })
  t.equal(called, false, 'fails fast while the connection is known to be down')
})

t.test('an operation that loops stops at the deadline: its next check throws', async (t) => {
  const ready = { status: 'ready' } as Redis
  let steps = 0
  const looping = guardRedisCall(ready, 30, async (deadline) => {
    for (;;) {
      deadline.throwIfAborted()
      steps++
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })
  await t.rejects(looping, { code: 'STORE_UNAVAILABLE' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const after = steps
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.ok(after > 0, `${after} steps ran before the deadline`)
  t.equal(steps, after, 'and none after it')
})
