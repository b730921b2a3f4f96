import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { create, unique } from '../../helpers/api-suite.js'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import { commandsSentDuring } from '../../helpers/monitor.js'
import { startRedis } from '../../helpers/redis-server.js'
import { runScript } from '../../../src/store/redis/commands.js'

// One round trip per append on a single Redis: when the process knows a conversation's
// owner, the append script moves the owner's index entry itself. The owner it knows may be
// wrong (another instance deleted the conversation and created it again for another user):
// the script checks, and the entry of the real owner moves all the same.

const server = await startRedis()
t.teardown(() => server.close())
const env = redisEnv(server)

/** The scripts the service sends while `action` runs, as MONITOR sees them. */
async function scriptsSentDuring (action: () => Promise<unknown>): Promise<number> {
  return (await commandsSentDuring(server.url, action)).filter((command) => /^eval(sha)?$/.test(command)).length
}

const append = async (app: FastifyInstance, id: string, messageId: string): Promise<number> =>
  (await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ id: messageId, role: 'user', text: 'hi' }] } })).statusCode

const listed = async (app: FastifyInstance, userId: string): Promise<string[]> =>
  (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?view=summary` })).json().items.map((item: { id: string }) => item.id)

t.test('an append to a conversation whose owner the process knows is one script, index entry included', async (t) => {
  const app = await build(t, env)
  const userId = unique('owner')
  const older = await create(app, { id: unique('older'), userId })
  await sleep(5)
  const newer = await create(app, { id: unique('newer'), userId })
  await sleep(5)
  t.equal(await scriptsSentDuring(async () => { t.equal(await append(app, older.id, 'm1'), 201) }), 1, 'one script: the append moved the entry itself')
  t.same(await listed(app, userId), [older.id, newer.id], 'the appended conversation is first')

  const cold = await build(t, env)
  t.equal(await scriptsSentDuring(async () => { t.equal(await append(cold, newer.id, 'm1'), 201) }), 2, 'a process that never saw the owner moves the entry after the script')
  t.equal(await scriptsSentDuring(async () => { t.equal(await append(cold, newer.id, 'm2'), 201) }), 1, 'and knows the owner from then on')
  t.same(await listed(app, userId), [newer.id, older.id])
})

t.test('an owner guessed wrong moves the real owner\'s entry, never the old owner\'s', async (t) => {
  const first = await build(t, env)
  const second = await build(t, env)
  const [before, after] = [unique('before'), unique('after')]
  const id = unique('reused')
  await create(first, { id, userId: before })
  t.equal((await first.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 200, 'the first process learns the owner')
  // Another instance deletes it and creates it again for another user, who also has an older one.
  t.equal((await second.inject({ method: 'DELETE', url: `/v1/conversations/${id}` })).statusCode, 204)
  await create(second, { id, userId: after })
  await sleep(5)
  const other = await create(second, { id: unique('other'), userId: after })
  await sleep(5)
  t.equal(await append(first, id, 'm1'), 201)
  t.same(await listed(first, after), [id, other.id], 'the real owner\'s list has it first')
  t.same(await listed(first, before), [], 'the former owner\'s list does not have it')
  const redis = new Redis(server.url)
  t.teardown(() => { redis.disconnect() })
  t.equal(await redis.zscore(`${env.REDIS_KEY_PREFIX as string}user:{${before}}:index`, id), null, 'no entry was added for the former owner')
})

t.test('index steps that arrive late or out of order: no stale event on the user\'s feed, and no entry for a deleted conversation', async (t) => {
  const app = await build(t, env)
  const userId = unique('late')
  const position = async (): Promise<string> =>
    (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations` })).headers['last-event-id'] as string
  const index = `${env.REDIS_KEY_PREFIX as string}user:{${userId}}:index`
  const conversation = await create(app, { id: unique('c'), userId })
  const patched = await app.inject({ method: 'PATCH', url: `/v1/conversations/${conversation.id}`, payload: { title: 'newer' } })
  const updatedAt = Date.parse(patched.json().updatedAt)
  const before = await position()
  const late = async (score: number): Promise<unknown> => await runScript(app.redis, 'csTouchIndex', [index], 'GT', score, conversation.id, score + 60_000,
    'conversation.updated', 1, JSON.stringify({ conversation: { title: 'stale' } }))
  t.equal(await late(updatedAt - 1000), 0, 'a move older than the entry is stale')
  t.equal(await position(), before, 'and writes no event')
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/conversations/${conversation.id}` })).statusCode, 204)
  const deleted = await position()
  t.equal(await late(updatedAt), 0, 'a move of the deleted conversation that arrives after its deletion is stale')
  t.equal(await position(), deleted, 'no event after the deletion')
  t.equal(await app.redis.zscore(index, conversation.id), null, 'and no entry that points at nothing')
  await sleep(5)
  await create(app, { id: conversation.id, userId })
  t.not(await position(), deleted, 'the same id created again is announced')
  t.ok(await app.redis.zscore(index, conversation.id), 'and listed')
})
