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

t.test('a PUT and a rewind give every key the conversation\'s own TTL', async (t) => {
  const app = await build(t, env)
  const id = `put-ttl-${process.pid}`
  const userId = `put-ttl-owner-${process.pid}`
  const messages = [{ id: 'm1', role: 'user', text: 'hi' }, { id: 'm2', role: 'assistant', text: 'hello' }]
  t.equal((await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId, ttlSeconds: 700, messages } })).statusCode, 201)
  await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: 's', turnCount: 1, status: 'active' } })
  await assertLife(t, id, userId, 700, 'a PUT')
  await redis.pexpire(keysOf(id)[2] as string, 1000)
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}/messages?after=m1` })).statusCode, 200)
  await assertLife(t, id, userId, 700, 'a rewind refreshes every key with it')
})

t.test('a fork and an import give every key the conversation\'s own TTL', async (t) => {
  const app = await build(t, env)
  const id = `fork-ttl-source-${process.pid}`
  const userId = `fork-ttl-owner-${process.pid}`
  await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId, ttlSeconds: 900, messages: [{ id: 'm1', role: 'user', text: 'hi' }] } })
  await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: 's', turnCount: 1, status: 'active' } })
  const fork = await app.inject({ method: 'POST', url: `/v1/conversations/${id}/fork`, payload: { id: `${id}-fork` } })
  t.equal(fork.statusCode, 201)
  t.equal(await redis.hget(`${prefix}conv:{${id}-fork}`, 'ttl'), '900000', 'the fork keeps the source\'s own TTL')
  await assertLife(t, `${id}-fork`, userId, 900, 'a fork')

  const line = { type: 'conversation', conversation: { id: `${id}-imported`, userId, ttlSeconds: 1200, messages: [{ id: 'm1', role: 'user' }] }, workflowState: { step: 's', turnCount: 0, status: 'active' } }
  const imported = await app.inject({ method: 'POST', url: `/v1/users/${userId}/import`, headers: { 'content-type': 'application/x-ndjson' }, payload: JSON.stringify(line) })
  t.equal(imported.json().imported, 1)
  await assertLife(t, `${id}-imported`, userId, 1200, 'an import')
})

t.test('the per-user cap deletes every key of the conversations it removes, inside the create\'s script', async (t) => {
  const app = await build(t, { ...env, MAX_CONVERSATIONS_PER_USER: '2' })
  const userId = `capped-${process.pid}`
  const create = async (n: number): Promise<void> => {
    await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: `${userId}-${n}`, userId, messages: [{ id: 'm1', role: 'user', text: 'hi' }] } })
  }
  for (const n of [1, 2]) {
    await create(n)
    await app.inject({ method: 'PUT', url: `/v1/conversations/${userId}-${n}/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
  }
  const client = new Redis(server.url)
  const monitor = await client.monitor()
  const seen: Array<{ command: string, key: string | undefined, source: string }> = []
  monitor.on('monitor', (_time: string, [command, key]: string[], source: string) => { seen.push({ command: (command as string).toUpperCase(), key, source }) })
  await create(3)
  await new Promise((resolve) => setTimeout(resolve, 100))
  monitor.disconnect()
  client.disconnect()
  const fromClients = seen.filter(({ source }) => source !== 'lua')
  t.same(fromClients.map(({ command }) => command), ['EVALSHA', 'EVALSHA', 'EVALSHA'], 'the create is its three scripts (index entry, write, index move), nothing after')
  t.ok(seen.some(({ command, key, source }) => command === 'DEL' && key === `${prefix}conv:{${userId}-1}` && source === 'lua'), 'the oldest is deleted inside one of them')
  await app.inject({ method: 'PUT', url: `/v1/conversations/${userId}-3/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
  t.same(await Promise.all(keysOf(`${userId}-1`).map(async (key) => await redis.exists(key))), [0, 0, 0, 0, 0, 0], 'the oldest is gone, workflow state and all')
  t.same(await Promise.all(keysOf(`${userId}-3`).map(async (key) => await redis.exists(key))), [1, 1, 1, 1, 1, 1])
  t.same(await redis.zrange(`${prefix}user:{${userId}}:index`, '0', '-1'), [`${userId}-2`, `${userId}-3`], 'and out of the index')
})
