import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { create, unique } from '../helpers/api-suite.js'
import { redisEnv } from '../helpers/backends.js'
import { build } from '../helpers/build.js'
import { startRedisCluster } from '../helpers/redis-cluster.js'
import { startRedis } from '../helpers/redis-server.js'

// The read cache of validated views (src/store/view-cache.ts) against a real Redis: every
// instance keeps its own cache, so writes by another instance, deletes and re-creates under
// the same id, tampering and records without the schema stamp must never be answered from
// it. An instance with the cache off (VIEW_CACHE_MAX_BYTES=0) is the oracle.

type Json = Record<string, any>

const server = await startRedis()
t.teardown(() => server.close())
const redis = new Redis(server.url)
t.teardown(async () => { await redis.quit() })

const env = redisEnv(server)
const prefix = env.REDIS_KEY_PREFIX as string
const docOf = (id: string): string => `${prefix}conv:{${id}}`
const uncachedEnv = { ...env, VIEW_CACHE_MAX_BYTES: '0' }

const get = (app: FastifyInstance, id: string, query = '', headers: Json = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url: `/v1/conversations/${id}${query}`, headers })
const list = (app: FastifyInstance, userId: string, query = ''): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations${query}` })
const write = (app: FastifyInstance, method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: Json): Promise<LightMyRequestResponse> =>
  app.inject({ method, url: `/v1/conversations${url === '' ? '' : `/${url}`}`, ...(payload === undefined ? {} : { payload }) })

interface Expected { etag: string, version: number, messageCount: number, title: string, texts: string[] }

/**
 * What `app` (whose cache may hold older views) answers for the conversation and the
 * user's lists: the expected version, and exactly what an instance without a cache answers.
 */
async function expectCurrent (t: Test, app: FastifyInstance, oracle: FastifyInstance, id: string, userId: string, want: Expected, stale: string[] = []): Promise<void> {
  const full = await get(app, id)
  t.equal(full.statusCode, 200)
  t.equal(full.headers.etag, want.etag, 'the current ETag')
  t.match(full.json(), { id, version: want.version, messageCount: want.messageCount, title: want.title })
  t.same(full.json().messages.map((m: Json) => m.text), want.texts, 'the current messages')
  const truth = await get(oracle, id)
  t.same(full.json(), truth.json(), 'the full view equals the uncached one')
  t.equal(full.headers.etag, truth.headers.etag)
  for (const old of stale) t.equal((await get(app, id, '', { 'if-none-match': old })).statusCode, 200, `an old ETag ${old} is not a 304`)
  t.equal((await get(app, id, '', { 'if-none-match': want.etag })).statusCode, 304, 'the current ETag is a 304')

  const summary = await get(app, id, '?view=summary')
  t.equal(summary.headers.etag, want.etag)
  t.match(summary.json(), { version: want.version, messageCount: want.messageCount, title: want.title })
  t.equal(summary.json().messages, undefined)
  t.same(summary.json(), (await get(oracle, id, '?view=summary')).json(), 'the summary equals the uncached one')

  for (const view of ['full', 'summary']) {
    const page = await list(app, userId, `?view=${view}`)
    t.equal(page.statusCode, 200)
    const item = page.json().items.find((c: Json) => c.id === id)
    t.match(item, { version: want.version, messageCount: want.messageCount, title: want.title }, `the ${view} list has the current version`)
    if (view === 'full') t.same(item.messages.map((m: Json) => m.text), want.texts)
    t.same(page.json(), (await list(oracle, userId, `?view=${view}`)).json(), `the ${view} list equals the uncached one`)
  }
}

async function expectCorrupt (t: Test, app: FastifyInstance, id: string, userId: string, healthy: string[]): Promise<void> {
  for (const query of ['', '?view=summary']) {
    const response = await get(app, id, query)
    t.equal(response.statusCode, 500, `GET${query} is a 500`)
    t.equal(response.json().code, 'CORRUPT_RECORD')
  }
  for (const view of ['full', 'summary']) {
    const page = await list(app, userId, `?view=${view}`)
    t.equal(page.statusCode, 200)
    t.same(page.json().items.map((c: Json) => c.id), healthy, `the ${view} list skips it`)
  }
}

/** Reads the conversation and the user's lists once, so that `app` caches their views. */
async function prime (t: Test, app: FastifyInstance, id: string, userId: string): Promise<void> {
  for (const query of ['', '?view=summary']) t.equal((await get(app, id, query)).statusCode, 200)
  for (const view of ['full', 'summary']) t.equal((await list(app, userId, `?view=${view}`)).statusCode, 200)
}

/** A and B share one Redis with the cache on; C has it off. Each step: B writes, then A reads. */
async function writesOnB (t: Test, a: FastifyInstance, b: FastifyInstance, c: FastifyInstance): Promise<void> {
  const userId = unique('u')
  const other = await create(b, { userId, title: 'other' })
  const created = await write(b, 'POST', '', { id: unique('c'), userId, title: 'first', messages: [{ id: 'm1', role: 'user', text: 'aaaa' }] })
  const { id } = created.json()
  const seen = [created.headers.etag as string]
  await prime(t, a, id, userId)
  await expectCurrent(t, a, c, id, userId, { etag: seen[0] as string, version: 1, messageCount: 1, title: 'first', texts: ['aaaa'] })

  const steps: Array<[string, () => Promise<LightMyRequestResponse>, Omit<Expected, 'etag'>]> = [
    ['append', () => write(b, 'POST', `${id}/messages`, { messages: [{ id: 'm2', role: 'assistant', text: 'bbbb' }] }),
      { version: 2, messageCount: 2, title: 'first', texts: ['aaaa', 'bbbb'] }],
    // Same length as before: the record's body is unchanged, only a message is.
    ['message edit', () => write(b, 'PATCH', `${id}/messages/m1`, { text: 'cccc' }), { version: 3, messageCount: 2, title: 'first', texts: ['cccc', 'bbbb'] }],
    ['PATCH', () => write(b, 'PATCH', id, { title: 'patch' }), { version: 4, messageCount: 2, title: 'patch', texts: ['cccc', 'bbbb'] }],
    ['message delete', () => write(b, 'DELETE', `${id}/messages/m2`), { version: 5, messageCount: 1, title: 'patch', texts: ['cccc'] }],
    ['PUT', () => write(b, 'PUT', id, { userId, title: 'put', messages: [{ role: 'user', text: 'x' }, { role: 'user', text: 'y' }, { role: 'user', text: 'z' }] }),
      { version: 6, messageCount: 3, title: 'put', texts: ['x', 'y', 'z'] }]
  ]
  for (const [name, step, want] of steps) {
    const response = await step()
    t.ok(response.statusCode < 300, `${name} on B: ${response.statusCode}`)
    const etag = response.headers.etag as string
    t.notOk(seen.includes(etag), `${name}: a new ETag`)
    await expectCurrent(t, a, c, id, userId, { ...want, etag }, seen)
    seen.push(etag)
  }
  const ids = (await list(a, userId)).json().items.map((item: Json) => item.id)
  t.same(ids, [id, other.id], 'the list order follows the writes on B')
}

t.test('writes on another instance show at once on an instance that has cached the views', async (t) => {
  await writesOnB(t, await build(t, env), await build(t, env), await build(t, uncachedEnv))
})

t.test('a conversation deleted and created again under its id on another instance is never answered from the cache', async (t) => {
  const [a, b, c] = [await build(t, env), await build(t, env), await build(t, uncachedEnv)]
  const userId = unique('u')
  const id = unique('c')
  const first = await write(b, 'POST', '', { id, userId, title: 'aaaa', messages: [{ id: 'm1', role: 'user', text: 'old' }] })
  const old = first.headers.etag as string
  await prime(t, a, id, userId)
  t.equal((await get(a, id, '', { 'if-none-match': old })).statusCode, 304)

  t.equal((await write(b, 'DELETE', id)).statusCode, 204)
  for (const query of ['', '?view=summary']) t.equal((await get(a, id, query)).statusCode, 404, `GET${query} after the delete is a 404`)
  // An index entry left pointing at it (as a crashed create leaves one) is skipped too.
  await redis.zadd(`${prefix}user:{${userId}}:index`, Date.now(), id)
  for (const view of ['full', 'summary']) t.same((await list(a, userId, `?view=${view}`)).json().items, [], `the ${view} list is empty`)

  // The same version and a body of the same length: only the incarnation tells them apart.
  const again = await write(b, 'POST', '', { id, userId, title: 'bbbb', messages: [{ id: 'm1', role: 'user', text: 'new' }] })
  t.equal(again.statusCode, 201)
  const etag = again.headers.etag as string
  t.not(etag, old, 'a new ETag')
  await expectCurrent(t, a, c, id, userId, { etag, version: 1, messageCount: 1, title: 'bbbb', texts: ['new'] }, [old])
})

t.test('a cached answer is the uncached one, and If-None-Match works on it', async (t) => {
  const [a, c] = [await build(t, env), await build(t, uncachedEnv)]
  const userId = unique('u')
  const messages = [
    { id: 'm1', role: 'user', text: 'héllo 🌍', metadata: { a: 1 } },
    { id: 'm2', role: 'assistant', kind: 'adaptiveCard', cardJson: { type: 'x' }, cardId: 'card' }
  ]
  const fields = { title: 'cached', metadata: { nested: { list: [1, 'two', null, true] } }, stepData: { k: 'v' }, workflowId: 'wf', currentStep: 2 }
  const created = await write(a, 'POST', '', { userId, ...fields, messages })
  const { id } = created.json()
  for (const query of ['', '?view=summary']) {
    const first = await get(a, id, query)
    const second = await get(a, id, query)
    const uncached = await get(c, id, query)
    t.equal(first.statusCode, 200)
    t.equal(second.statusCode, 200)
    t.same(second.json(), first.json(), `the second GET${query} equals the first`)
    t.same(second.json(), uncached.json(), 'and the uncached one')
    t.equal(second.body, uncached.body, 'byte for byte')
    t.equal(second.headers.etag, first.headers.etag)
    t.equal(second.headers.etag, uncached.headers.etag)
    t.equal(second.headers.etag, created.headers.etag)
    t.match(second.headers['content-type'], /application\/json/)
    const notModified = await get(a, id, query, { 'if-none-match': second.headers.etag as string })
    t.equal(notModified.statusCode, 304, 'the current ETag is a 304')
    t.equal(notModified.headers.etag, second.headers.etag)
    t.equal(notModified.body, '')
    t.equal((await get(a, id, query, { 'if-none-match': `W/${second.headers.etag as string}` })).statusCode, 304, 'a weak one too')
    t.equal((await get(a, id, query, { 'if-none-match': '"other.1"' })).statusCode, 200, 'another tag is a 200')
  }
  t.same(created.json(), { ...(await get(a, id)).json() }, 'the cached view is what the create answered')
})

t.test('a record tampered with after a cached read is corrupt, and lists skip it', async (t) => {
  const a = await build(t, env)
  const userId = unique('u')
  const healthy = await create(a, { userId, title: 'healthy' })
  const { id } = await create(a, { userId, title: 'tampered', messages: [{ role: 'user', text: 'hi' }] })
  await prime(t, a, id, userId)
  await prime(t, a, id, userId)
  await redis.hset(docOf(id), 'body', 'not json')
  await expectCorrupt(t, a, id, userId, [healthy.id])
})

t.test('a record without the schema stamp is validated on every read', async (t) => {
  const a = await build(t, env)
  const userId = unique('u')
  const healthy = await create(a, { userId, title: 'healthy' })
  const { id } = await create(a, { userId, title: 'unstamped' })
  const doc = docOf(id)
  await prime(t, a, id, userId) // cached while it still has the stamp
  t.equal(await redis.hget(doc, 'sv'), 'v2', 'written with the stamp')
  t.equal(await redis.hdel(doc, 'sv'), 1)
  await prime(t, a, id, userId)
  await prime(t, a, id, userId)
  t.match((await get(a, id)).json(), { title: 'unstamped', version: 1 }, 'still readable without the stamp')
  const body = await redis.hget(doc, 'body') as string
  const version = await redis.hget(doc, 'version')
  const invalid = '#'.repeat(Buffer.byteLength(body))
  await redis.hset(doc, 'body', invalid)
  t.equal(await redis.hstrlen(doc, 'body'), Buffer.byteLength(body), 'the same length in bytes')
  t.equal(await redis.hget(doc, 'version'), version, 'and the same version')
  await expectCorrupt(t, a, id, userId, [healthy.id])
})

t.test('with VIEW_CACHE_MAX_BYTES=0 reads follow the writes of another instance', async (t) => {
  await writesOnB(t, await build(t, uncachedEnv), await build(t, env), await build(t, uncachedEnv))
})

t.test('a small cache that evicts all the time still answers every read right', async (t) => {
  const [a, b, c] = [await build(t, { ...env, VIEW_CACHE_MAX_BYTES: '20000' }), await build(t, env), await build(t, uncachedEnv)]
  const userId = unique('u')
  const ids: string[] = []
  for (let i = 0; i < 30; i++) {
    ids.push((await create(b, { userId, title: `t${i}`, messages: [{ id: 'm1', role: 'user', text: `${i}:`.padEnd(2000, String.fromCharCode(97 + i % 26)) }] })).id)
  }
  const checkAll = async (name: string): Promise<void> => {
    const expected = await Promise.all(ids.map(async (id) => (await get(c, id)).json()))
    // Sequential reads fill and evict; then parallel ones in which the views the cache holds
    // come last, so that others evict them between Redis answering 'SAME' and the lookup.
    for (let round = 0; round < 2; round++) {
      for (const [i, id] of ids.entries()) t.same((await get(a, id)).json(), expected[i], `${name}: GET ${i}`)
    }
    const answers = await Promise.all(ids.map(async (id) => await get(a, id)))
    t.same(answers.map((r) => r.json()), expected, `${name}: parallel GETs`)
    t.same(answers.map((r) => r.headers.etag), await Promise.all(ids.map(async (id) => (await get(c, id)).headers.etag)))
    for (const query of ['?view=summary', '?view=full', '?view=summary&limit=7', '?view=full&limit=7']) {
      for (let round = 0; round < 2; round++) {
        let [cursor, pages] = ['', 0]
        do {
          const page = (await list(a, userId, `${query}${cursor}`)).json()
          t.same(page, (await list(c, userId, `${query}${cursor}`)).json(), `${name}: list ${query} page ${pages}`)
          cursor = page.nextCursor === null ? '' : `&cursor=${page.nextCursor as string}`
          pages++
        } while (cursor !== '')
        t.equal(pages, query.includes('limit') ? 5 : 1)
      }
    }
    const parallel = await Promise.all([list(a, userId, '?view=summary'), list(a, userId), ...ids.map(async (id) => await get(a, id, '?view=summary'))])
    t.same(parallel[0].json(), (await list(c, userId, '?view=summary')).json(), `${name}: parallel summary list`)
    t.same(parallel[1].json(), (await list(c, userId)).json(), `${name}: parallel full list`)
    const summaries = await Promise.all(ids.map(async (id) => (await get(c, id, '?view=summary')).json()))
    t.same(parallel.slice(2).map((r) => r.json()), summaries, `${name}: parallel summary GETs`)
  }
  await checkAll('as created')
  for (const [i, id] of ids.entries()) {
    if (i % 3 === 0) t.equal((await write(b, 'POST', `${id}/messages`, { messages: [{ role: 'assistant', text: 'more' }] })).statusCode, 201)
    if (i % 3 === 1) t.equal((await write(b, 'PATCH', id, { title: `t${i}` + 'p' })).statusCode, 200)
  }
  const titles = (await list(a, userId, '?view=summary')).json().items.map((item: Json) => item.title)
  t.equal(titles.filter((title: string) => title.endsWith('p')).length, 10, 'the patches show')
  t.same(ids.map((id, i) => i % 3 === 1 ? `t${i}p` : `t${i}`).sort(), [...titles].sort())
  await checkAll('after writes on B')
})

t.test('on a Redis Cluster, lists follow the writes of another instance', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const clusterEnv = { REDIS_URL: cluster.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_CLUSTER: 'true', REDIS_KEY_PREFIX: `test-${process.pid}:` }
  t.ok(cluster.nodes.every((node) => node.port < 55536), 'cluster ports leave room for the bus ports')
  await writesOnB(t, await build(t, clusterEnv), await build(t, clusterEnv), await build(t, { ...clusterEnv, VIEW_CACHE_MAX_BYTES: '0' }))
})

t.test("an instance's own writes drop what it cached of the conversation (memory and Redis)", async (t) => {
  const cachedBytes = async (app: FastifyInstance): Promise<number> =>
    Number(/^view_cache_bytes (\d+)$/m.exec((await app.inject({ method: 'GET', url: '/metrics' })).body)?.[1])
  for (const [backend, settings] of [['memory', {}], ['redis', env]] as const) {
    const app = await build(t, settings)
    const userId = unique('u')
    const { id } = await create(app, { id: unique('c'), userId, messages: [{ id: 'm1', role: 'user', text: 'hello' }] })
    t.equal(await cachedBytes(app), 0, `${backend}: nothing cached before a read`)
    const writes: Array<[string, () => Promise<LightMyRequestResponse>]> = [
      ['append', async () => await write(app, 'POST', `${id as string}/messages`, { messages: [{ id: 'm2', role: 'user', text: 'more' }] })],
      ['PATCH', async () => await write(app, 'PATCH', id as string, { title: 'patched' })],
      ['message edit', async () => await app.inject({ method: 'PATCH', url: `/v1/conversations/${id as string}/messages/m1`, payload: { text: 'edited' } })],
      ['PUT', async () => await write(app, 'PUT', id as string, { userId, messages: [] })],
      ['delete-all of the user', async () => await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations` })]
    ]
    for (const [name, change] of writes) {
      t.equal((await get(app, id as string)).statusCode, 200)
      t.ok(await cachedBytes(app) > 0, `${backend}: a read caches the view (before ${name})`)
      t.ok((await change()).statusCode < 300, `${backend}: ${name}`)
      t.equal(await cachedBytes(app), 0, `${backend}: ${name} drops it`)
    }
  }
})
