import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import { startRedis } from '../../helpers/redis-server.js'

// A conversation's own TTL, as Redis holds it: every key the conversation owns expires
// with it, the user index lives at least as long, and writes that do not carry the TTL
// (appends, message edits, workflow state) refresh every key with it too.

const server = await startRedis()
t.teardown(() => server.close())
const env = redisEnv(server)
const prefix = env.REDIS_KEY_PREFIX as string
const redis = new Redis(server.url)
t.teardown(async () => { await redis.quit() })

const keysOf = (id: string): string[] => {
  const doc = `${prefix}conv:{${id}}`
  return [doc, `${doc}:order`, `${doc}:bodies`, `${doc}:tokens`, `${doc}:message-ids`, `${doc}:workflow`]
}

/** Every key of the conversation expires within (ttl - slack, ttl] seconds from now. */
async function assertLife (t: Test, id: string, userId: string, seconds: number, what: string): Promise<void> {
  const lives = await Promise.all(keysOf(id).map(async (key) => await redis.pttl(key)))
  t.ok(lives.every((ms) => ms > (seconds - 5) * 1000 && ms <= seconds * 1000), `${what}: every key expires in ${seconds} s (${lives.join(', ')} ms)`)
  t.ok(await redis.pttl(`${prefix}user:{${userId}}:index`) >= (seconds - 5) * 1000, `${what}: the index lives at least as long`)
}

t.test('every key of a conversation with its own TTL expires with it, refreshed by every write', async (t) => {
  const app = await build(t, env)
  const id = `own-ttl-${process.pid}`
  const userId = `ttl-owner-${process.pid}`
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId, ttlSeconds: 600, messages: [{ id: 'm1', role: 'user', text: 'hi' }] } })
  t.equal(created.statusCode, 201)
  await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: 's', turnCount: 1, status: 'active' } })
  t.equal(await redis.hget(`${prefix}conv:{${id}}`, 'ttl'), '600000', 'the hash keeps the conversation\'s own TTL')
  await assertLife(t, id, userId, 600, 'after the create')

  await redis.pexpire(keysOf(id)[1] as string, 1000) // as if time had passed for the order set
  await sleep(20)
  t.equal((await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ id: 'm2', role: 'user' }] } })).statusCode, 201)
  await assertLife(t, id, userId, 600, 'an append refreshes every key with the conversation\'s TTL')

  t.equal((await app.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { ttlSeconds: null } })).statusCode, 200)
  t.equal(await redis.hget(`${prefix}conv:{${id}}`, 'ttl'), null, 'null drops it')
  await assertLife(t, id, userId, 86400, 'after PATCH null: REDIS_TTL')
  t.equal((await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: 't', turnCount: 2, status: 'active' } })).statusCode, 200)
  t.ok(await redis.pttl(keysOf(id)[5] as string) > 86_000_000, 'the workflow state follows REDIS_TTL again')
})
