import { Redis } from 'ioredis'
import t from 'tap'
import { create, unique } from '../../helpers/api-suite.js'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import { commandsSentDuring } from '../../helpers/monitor.js'
import { startRedis } from '../../helpers/redis-server.js'

// A GET of a conversation this process has validated in its current version checks the
// fingerprint with two plain commands (HMGET and HSTRLEN) and answers the cached bytes; any
// change is read whole by the script (docs/redis.md, "Validated once per version").

const server = await startRedis()
t.teardown(() => server.close())
const redis = new Redis(server.url)
t.teardown(async () => { await redis.quit() })
const env = redisEnv(server)
const docKey = (id: string): string => `${env.REDIS_KEY_PREFIX as string}conv:{${id}}`

t.test('an unchanged conversation is read with two plain commands, a changed one with the script', async (t) => {
  const app = await build(t, env)
  const other = await build(t, env)
  const { id } = await create(app, { userId: unique('u'), messages: [{ id: 'm0', role: 'user', text: 'hello' }] })
  const get = async (): Promise<{ body: any, etag: unknown, position: unknown }> => {
    const response = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
    t.equal(response.statusCode, 200)
    return { body: response.json(), etag: response.headers.etag, position: response.headers['last-event-id'] }
  }
  const first = await get()
  let again: Awaited<ReturnType<typeof get>> | undefined
  t.same(await commandsSentDuring(server.url, async () => { again = await get() }), ['hmget', 'hstrlen'], 'no script')
  t.same(again, first, 'the same answer, tag and feed position')

  t.equal((await other.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ id: 'm1', role: 'assistant', text: 'hi' }] } })).statusCode, 201)
  let changed: Awaited<ReturnType<typeof get>> | undefined
  t.same(await commandsSentDuring(server.url, async () => { changed = await get() }), ['hmget', 'hstrlen', 'evalsha'], 'another instance\'s write: read whole')
  t.same(changed?.body.messages.map((message: { id: string }) => message.id), ['m0', 'm1'])
  t.not(changed?.etag, first.etag)
  t.not(changed?.position, first.position, 'the feed moved with the append')

  const body = JSON.parse(await redis.hget(docKey(id), 'body') ?? '')
  await redis.hset(docKey(id), 'body', JSON.stringify({ ...body, metadata: { changed: 'in Redis, by something else' } }))
  const reread = await get()
  t.same(reread.body.metadata, { changed: 'in Redis, by something else' }, 'a body of another length is read again')
  t.equal(reread.etag, changed?.etag, 'at the same version')
})

t.test('a conversation deleted by another instance is gone, not answered from the cache', async (t) => {
  const app = await build(t, env)
  const other = await build(t, env)
  const { id } = await create(app, { userId: unique('u') })
  t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 200)
  t.equal((await other.inject({ method: 'DELETE', url: `/v1/conversations/${id}` })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 404)
})
