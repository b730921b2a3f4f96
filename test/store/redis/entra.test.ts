import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp } from '../../../src/app.js'
import { loadConfig } from '../../../src/config.js'
import { loggerOptions } from '../../../src/logging.js'
import type { AccessToken, TokenSource } from '../../../src/store/redis/entra-token.js'
import { startRedis } from '../../helpers/redis-server.js'

// Microsoft Entra ID authentication without Azure: the token source is injected, and Redis
// ACL users stand in for the identity, with passwords rotated the way tokens are.

const server = await startRedis()
t.teardown(() => server.close())
const admin = new Redis(server.url)
t.teardown(async () => { await admin.quit() })

const USER = 'svc-object-id'

/** A token source that hands out whatever token the test sets, each valid for `lifeMs`. */
function tokenSource (lifeMs: number): TokenSource & { current: string | Error, calls: number } {
  const source = {
    current: 'token-1' as string | Error,
    calls: 0,
    async getToken (): Promise<AccessToken> {
      source.calls++
      if (source.current instanceof Error) throw source.current
      return { token: source.current, expiresOnTimestamp: Date.now() + lifeMs }
    }
  }
  return source
}

async function build (t: Test, source: TokenSource, lines: string[] = []): Promise<FastifyInstance> {
  const config = loadConfig({
    REDIS_URL: server.url,
    REDIS_ALLOW_PLAINTEXT: 'true',
    REDIS_AUTH: 'entra',
    REDIS_USERNAME: USER,
    REDIS_TIMEOUT: '500',
    HEALTH_TIMEOUT_MS: '500',
    REDIS_KEY_PREFIX: `entra-${process.pid}:`
  })
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp(config, { redisTokenSource: source, logger: { ...loggerOptions('info'), stream } })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

async function authCalls (): Promise<number> {
  const stats = await admin.info('commandstats')
  return Number(/cmdstat_auth:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

async function eventually (check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const createOk = async (app: FastifyInstance): Promise<boolean> =>
  (await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } })).statusCode === 201

t.test('tokens rotate before they expire, across two rotations and a reconnect', async (t) => {
  await admin.call('ACL', 'SETUSER', USER, 'reset', 'on', '>token-1', '~*', '&*', '+@all')
  const source = tokenSource(2000)
  const app = await build(t, source)
  t.ok(await createOk(app), 'works with the first token')

  for (const next of ['token-2', 'token-3']) {
    // The identity gets a new secret, the source starts handing it out, then the old one goes.
    await admin.call('ACL', 'SETUSER', USER, `>${next}`)
    const previous = source.current as string
    source.current = next
    const calls = source.calls
    const auths = await authCalls()
    await eventually(async () => source.calls > calls, `the refresh to ${next}`)
    await eventually(async () => await authCalls() > auths, 'AUTH on the open connection')
    await admin.call('ACL', 'SETUSER', USER, `<${previous}`)
    t.ok(await createOk(app), `works after the rotation to ${next}`)
    // A reconnect must use the new token, since the old one is gone.
    await admin.call('CLIENT', 'KILL', 'USER', USER)
    await eventually(async () => await createOk(app), `a reconnect with ${next}`)
    t.pass(`reconnected with ${next}`)
  }
})

t.test('a token that cannot be had is logged and answered 503, and the service recovers', async (t) => {
  await admin.call('ACL', 'SETUSER', USER, 'reset', 'on', '>token-9', '~*', '&*', '+@all')
  const source = tokenSource(60_000)
  source.current = new Error('no managed identity endpoint')
  const lines: string[] = []
  const app = await build(t, source, lines)
  const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u1' } })
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'STORE_UNAVAILABLE')
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)
  const logged = lines.find((line) => line.includes('[STORE] could not get or apply a Microsoft Entra ID token'))
  t.match(logged, /no managed identity endpoint/, 'the log line says why')

  source.current = 'token-9'
  await eventually(async () => await createOk(app), 'recovery once a token comes')
  t.pass('recovered without a restart')
})

t.test('REDIS_AUTH=entra needs the identity as REDIS_USERNAME', async (t) => {
  t.throws(() => loadConfig({ REDIS_URL: 'rediss://h:10000', REDIS_AUTH: 'entra' }), { message: /^Invalid configuration: REDIS_USERNAME/ })
})
