import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { loggerOptions } from '../../../src/logging.js'
import { RedisConversationStore } from '../../../src/store/redis/store.js'
import type { ListCursor } from '../../../src/store/types.js'
import { create, unique } from '../../helpers/api-suite.js'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import { countTokens } from '../../helpers/tokens.js'
import { startRedis } from '../../helpers/redis-server.js'

// What the Redis backend keeps in Redis itself (key layout, TTLs, the user index), how it
// copes with records it did not write, and how several instances share one server. The
// app is driven over HTTP (inject); a separate client inspects and tampers with Redis.

type Json = Record<string, any>

const server = await startRedis()
t.teardown(() => server.close())
const PASSWORD = 's3cr3t-pw'
const server2 = await startRedis({ password: PASSWORD })
t.teardown(() => server2.close())

const redis = new Redis(server.url)
t.teardown(async () => { await redis.quit() })

const env = redisEnv(server)
const prefix = env.REDIS_KEY_PREFIX as string

interface Keys { doc: string, order: string, bodies: string, tokens: string, messageIds: string, workflow: string, index: string }

const keysOf = (id: string, userId: string): Keys => {
  const doc = `${prefix}conv:{${id}}`
  return {
    doc,
    order: `${doc}:order`,
    bodies: `${doc}:bodies`,
    tokens: `${doc}:tokens`,
    messageIds: `${doc}:message-ids`,
    workflow: `${doc}:workflow`,
    index: `${prefix}user:{${userId}}:index`
  }
}

const workflowState = { step: 'collect', turnCount: 1, status: 'active' }

const get = (app: FastifyInstance, id: string): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
const append = (app: FastifyInstance, id: string, messages: Json[], headers: Json = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages }, headers })
const patch = (app: FastifyInstance, id: string, payload: Json, headers: Json = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload, headers })
const putState = (app: FastifyInstance, id: string, payload: Json = workflowState): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload })
const list = (app: FastifyInstance, userId: string, query = ''): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations${query}` })

/** Creates conversations one after another, each with a strictly later updatedAt. */
async function createInOrder (app: FastifyInstance, userId: string, count: number): Promise<Json[]> {
  const created: Json[] = []
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(3)
    created.push(await create(app, { userId, title: `n${i}` }))
  }
  return created
}

async function assertAllExpire (t: Test, keys: Keys, ttlMs: number, atLeastMs = 0): Promise<void> {
  for (const [name, key] of Object.entries(keys)) {
    t.equal(await redis.exists(key), 1, `${name} exists`)
    const pttl = await redis.pttl(key)
    t.ok(pttl > atLeastMs && pttl <= ttlMs, `${name} has a TTL in (${atLeastMs}, ${ttlMs}] ms (PTTL ${pttl})`)
  }
}

t.test('key layout: every key the service writes has a TTL, and the index is scored by updatedAt', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const { id } = await create(app, { id: unique('c'), userId, title: 'layout', messages: [{ id: 'm1', role: 'user', text: 'hi' }] })
  t.equal((await putState(app, id)).statusCode, 201)
  t.equal((await append(app, id, [{ id: 'm2', role: 'assistant', text: 'hello' }])).statusCode, 201)
  const keys = keysOf(id, userId)

  t.equal(await redis.type(keys.doc), 'hash')
  t.equal(await redis.type(keys.order), 'zset')
  t.equal(await redis.type(keys.bodies), 'hash')
  t.equal(await redis.type(keys.tokens), 'hash')
  t.equal(await redis.type(keys.messageIds), 'set')
  t.equal(await redis.type(keys.workflow), 'hash')
  t.equal(await redis.type(keys.index), 'zset')
  t.same(await redis.smembers(keys.messageIds).then((ids) => ids.sort()), ['m1', 'm2'])
  t.same(await redis.zrange(keys.order, '0', '-1', 'WITHSCORES'), ['m1', '1', 'm2', '2'], 'messages scored by their position')
  t.same(await redis.hgetall(keys.tokens), { m1: '1', m2: '1' }, 'each message counted once, when written')
  t.match(await redis.hmget(keys.doc, 'count', 'seq'), ['2', '2'])
  await assertAllExpire(t, keys, 86400 * 1000)

  const everything = await redis.keys(`${prefix}*{${id}}*`)
  const incarnation = (await redis.hget(keys.doc, 'inc')) as string
  const events = `${keys.doc}:events:${incarnation}`
  t.same(everything.sort(), [keys.doc, keys.order, keys.bodies, keys.tokens, keys.messageIds, keys.workflow, events].sort(), 'no other key for the conversation')
  t.same((await redis.xrange(events, '-', '+')).map(([entryId, fields]) => [entryId, fields[1]]), [['1-0', 'workflow_state.updated'], ['2-0', 'message.created']],
    'the event log: one entry per change, numbered in write order')
  const eventsTtl = await redis.pttl(events)
  t.ok(eventsTtl > 0 && eventsTtl <= 86400 * 1000, `the event log expires with its conversation (PTTL ${eventsTtl})`)

  const stored = (await get(app, id)).json()
  t.equal(Number(await redis.zscore(keys.index, id)), Date.parse(stored.updatedAt), 'index score is updatedAt')
})

t.test('a conversation from before the tenant had its own field is still checked by its body\'s tenant', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const { id } = await create(app, { id: unique('c'), userId, tenantId: 'contoso', messages: [{ id: 'm1', role: 'user', text: 'hi' }] })
  const keys = keysOf(id, userId)
  t.equal(await redis.hget(keys.doc, 'tenantId'), 'contoso', 'a write stores the tenant beside the body')
  await redis.hdel(keys.doc, 'tenantId')
  const store = app.conversationStore
  const contoso = { tenants: new Set(['contoso']) }
  const fabrikam = { tenants: new Set(['fabrikam']) }
  const message = [{ id: 'm2', role: 'user' as const, kind: 'text' as const, text: 'more' }]
  await t.rejects(store.appendMessages(id, message, {}, fabrikam), { code: 'CONVERSATION_NOT_FOUND' })
  await t.rejects(store.getMessage(id, 'm1', fabrikam), { code: 'CONVERSATION_NOT_FOUND' })
  t.match(await store.appendMessages(id, message, {}, contoso), { appended: 1 })
  t.match(await store.getMessage(id, 'm1', contoso), { message: { id: 'm1' } })
  await redis.hset(keys.doc, 'body', 'not json')
  await t.rejects(store.getMessage(id, 'm1', contoso), { code: 'CONVERSATION_NOT_FOUND' }, 'a body that cannot be read names no tenant: out of reach')
  t.match(await store.getMessage(id, 'm1'), { message: { id: 'm1' } }, 'a caller of every tenant is not asked')
})

t.test('every write refreshes the TTL of everything the conversation owns', async (t) => {
  const app = await build(t, { ...env, REDIS_TTL: '60' })
  const userId = unique('u')
  const { id } = await create(app, { id: unique('c'), userId, messages: [{ id: 'm1', role: 'user' }] })
  t.equal((await putState(app, id)).statusCode, 201)
  const keys = keysOf(id, userId)
  await assertAllExpire(t, keys, 60_000, 50_000)

  for (const key of Object.values(keys)) await redis.pexpire(key, 5000)
  for (const key of Object.values(keys)) t.ok(await redis.pttl(key) <= 5000, `${key} lowered`)

  t.equal((await append(app, id, [{ id: 'm2', role: 'user' }])).statusCode, 201)
  await assertAllExpire(t, keys, 60_000, 50_000)

  t.test('a workflow-state PUT leaves the conversation version and updatedAt alone', async (t) => {
    const before = await redis.hmget(keys.doc, 'version', 'updatedAt')
    await sleep(5)
    t.equal((await putState(app, id, { step: 'next', turnCount: 2, status: 'active' })).statusCode, 200)
    t.same(await redis.hmget(keys.doc, 'version', 'updatedAt'), before)
    t.equal(await redis.hget(keys.workflow, 'version'), '2', 'the state itself was written')
    const read = (await get(app, id)).json()
    t.equal(read.version, Number(before[0]))
    t.equal(Date.parse(read.updatedAt), Number(before[1]))
  })
})

t.test('a corrupt record is a 500 CORRUPT_RECORD on read and is left out of lists', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const [oldest, middle, newest] = await createInOrder(app, userId, 3) as [Json, Json, Json]
  await redis.hset(keysOf(newest.id, userId).doc, 'body', 'not json')

  const response = await get(app, newest.id)
  t.equal(response.statusCode, 500)
  t.match(response.headers['content-type'], /application\/json/)
  const body = response.json()
  t.equal(body.code, 'CORRUPT_RECORD')
  t.equal(body.statusCode, 500)
  t.notMatch(response.body, /\bat .*\.(ts|js):\d+/, 'no stack trace')
  t.notMatch(response.body, /stack|not json|Unexpected token/i, 'no parser detail')

  const page = await list(app, userId, '?limit=2')
  t.equal(page.statusCode, 200)
  t.same(page.json().items.map((c: Json) => c.id), [middle.id, oldest.id], 'the page is still full')
  t.equal(page.json().nextCursor, null)
  const first = (await list(app, userId, '?limit=1')).json()
  t.same(first.items.map((c: Json) => c.id), [middle.id])
  t.type(first.nextCursor, 'string', 'reading past the corrupt one still finds a next page')
  const second = (await list(app, userId, `?limit=1&cursor=${first.nextCursor as string}`)).json()
  t.same(second.items.map((c: Json) => c.id), [oldest.id])
  t.equal(second.nextCursor, null)
  const summary = await list(app, userId, '?view=summary')
  t.same(summary.json().items.map((c: Json) => c.id), [middle.id, oldest.id], 'the summary view skips it too')

  t.test('a record nested deeper than the schema allows (as an older release could write) is corrupt, not a crash', async (t) => {
    const other = await create(app, { userId })
    const depth = 20_000
    await redis.hset(keysOf(other.id, userId).doc, 'body', `{"tenantId":"default","status":"active","metadata":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`)
    const response = await get(app, other.id)
    t.equal(response.statusCode, 500)
    t.equal(response.json().code, 'CORRUPT_RECORD')
    for (const view of ['full', 'summary']) {
      const page = await list(app, userId, `?limit=2&view=${view}`)
      t.equal(page.statusCode, 200, `the ${view} list still answers`)
      t.same(page.json().items.map((c: Json) => c.id), [middle.id, oldest.id], `and skips it (${view})`)
    }
  })

  t.test('a version that is not a number is corrupt as well', async (t) => {
    const other = await create(app, { userId })
    await redis.hset(keysOf(other.id, userId).doc, 'version', 'x')
    const response = await get(app, other.id)
    t.equal(response.statusCode, 500)
    t.equal(response.json().code, 'CORRUPT_RECORD')
    const page = await list(app, userId, '?limit=2')
    t.equal(page.statusCode, 200)
    t.same(page.json().items.map((c: Json) => c.id), [middle.id, oldest.id])
  })
})

t.test('stale index entries never shorten a page; old ones are pruned, recent ones kept', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const index = keysOf('x', userId).index
  const real = await createInOrder(app, userId, 3)
  await sleep(3)
  const now = Date.now()
  const ghosts = [unique('ghost'), unique('ghost')]
  await redis.zadd(index, now + 1, ghosts[0] as string, now + 2, ghosts[1] as string)

  const page = await list(app, userId, '?limit=3')
  t.equal(page.statusCode, 200)
  t.same(page.json().items.map((c: Json) => c.id), real.map((c) => c.id).reverse(), 'the three real ones')
  t.equal(page.json().nextCursor, null)
  for (const ghost of ghosts) t.not(await redis.zscore(index, ghost), null, 'a recent stale entry is kept')

  t.test('an old stale entry is pruned by a list that walks past it; a recent one is kept', async (t) => {
    const old = unique('old')
    const recent = unique('recent')
    await redis.zadd(index, Date.now() - 10 * 60_000, old, Date.now(), recent)
    const all = await list(app, userId)
    t.same(all.json().items.map((c: Json) => c.id), real.map((c) => c.id).reverse())
    t.equal(await redis.zscore(index, old), null, 'pruned')
    t.not(await redis.zscore(index, recent), null, 'kept: it may be a create in flight')
    for (const conversation of real) t.not(await redis.zscore(index, conversation.id), null, 'live entries untouched')
  })
})

t.test('a list walk that needs several batches is not shifted by writes between them', async (t) => {
  // Two recent stale entries on top make the walk read the index more than once; another
  // instance writes between those reads.
  async function walkWhile (write: (ids: string[], other: FastifyInstance) => Promise<void>): Promise<{ ids: string[], walk: string[] }> {
    const other = await build(t, env)
    const userId = unique('u')
    const ids = (await createInOrder(other, userId, 5)).map((c) => c.id as string)
    await redis.zadd(keysOf('x', userId).index, Date.now() + 1, 'ghost-a', Date.now() + 2, 'ghost-b')
    const client = new Redis(server.url)
    t.teardown(async () => { await client.quit() })
    let calls = 0
    // The store sees a client whose index walk lets the other instance write first.
    const interleaving = new Proxy(client, {
      get (target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown
        if (property !== 'csIndexEntriesAfter' || typeof value !== 'function') return value
        return async (...args: unknown[]) => {
          if (++calls === 2) await write(ids, other)
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        }
      }
    })
    const store = new RedisConversationStore({
      client: interleaving, keyPrefix: prefix, timeoutMs: 5000, limits: { ttlSeconds: 86400, maxMessagesPerConversation: 100 }, countTokens
    })
    const walk: string[] = []
    let cursor: ListCursor | undefined
    do {
      const page = await store.listByUser(userId, { limit: 3, view: 'summary', ...(cursor === undefined ? {} : { cursor }) })
      walk.push(...page.items.map((c) => c.id))
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    t.ok(calls >= 2, 'the walk took more than one batch')
    return { ids, walk }
  }

  t.test('a concurrent delete does not hide an untouched conversation', async (t) => {
    const { ids, walk } = await walkWhile(async (ids, other) => {
      t.equal((await other.inject({ method: 'DELETE', url: `/v1/conversations/${ids[4] as string}` })).statusCode, 204)
    })
    for (const id of ids.slice(0, 4)) t.ok(walk.includes(id), `${id} is listed`)
    t.equal(new Set(walk).size, walk.length, 'no repeats')
  })

  t.test('a concurrent update does not repeat an item', async (t) => {
    const { ids, walk } = await walkWhile(async (ids, other) => {
      t.equal((await patch(other, ids[0] as string, { title: 'moved' })).statusCode, 200)
    })
    t.equal(new Set(walk).size, walk.length, 'no repeats')
    for (const id of ids.slice(1)) t.ok(walk.includes(id), `${id} is listed`)
  })
})

t.test('a list filtered to a rare tenant walks thousands of entries within the deadline', async (t) => {
  const app = await build(t, { ...env, REDIS_TIMEOUT: '2000' })
  const userId = unique('u')
  const rare = await create(app, { userId, tenantId: 'rare' })
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(Array.from({ length: 100 }, async () => await create(app, { userId, tenantId: 'common' })))
  }
  // The rare one is the oldest of 2,001, so the walk reads the whole index to reach it.
  for (const view of ['summary', 'full']) {
    const response = await list(app, userId, `?tenantId=rare&limit=1&view=${view}`)
    t.equal(response.statusCode, 200, view)
    t.same(response.json().items.map((c: Json) => c.id), [rare.id])
    t.equal(response.json().nextCursor, null)
  }
})

t.test('the user index follows updatedAt through PATCH, append and PUT', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const { id } = await create(app, { userId })
  const index = keysOf(id, userId).index
  let previous = Number(await redis.zscore(index, id))

  const check = async (name: string, updatedAt: string): Promise<void> => {
    const score = Number(await redis.zscore(index, id))
    t.equal(score, Date.parse(updatedAt), `${name}: the score is the new updatedAt`)
    t.ok(score > previous, `${name}: the score moved forward`)
    previous = score
  }

  await sleep(3)
  const patched = await patch(app, id, { title: 'patched' })
  t.equal(patched.statusCode, 200)
  await check('PATCH', patched.json().updatedAt)

  await sleep(3)
  t.equal((await append(app, id, [{ role: 'user' }])).statusCode, 201)
  await check('append', (await get(app, id)).json().updatedAt)

  await sleep(3)
  const put = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId, title: 'replaced' } })
  t.equal(put.statusCode, 200)
  await check('PUT', put.json().updatedAt)

  await sleep(3)
  const guarded = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId }, headers: { 'if-match': put.headers.etag as string } })
  t.equal(guarded.statusCode, 200)
  await check('PUT with If-Match', guarded.json().updatedAt)

  t.same((await list(app, userId)).json().items.map((c: Json) => c.id), [id])
})

t.test('two instances sharing one Redis', async (t) => {
  const apps = [await build(t, env), await build(t, env)] as const
  const on = (i: number): FastifyInstance => apps[i % 2] as FastifyInstance

  t.test('100 parallel appends across both keep all 100 messages', async (t) => {
    const { id } = await create(apps[0], { userId: unique('u') })
    const responses = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      append(on(i), id, [{ id: `m${i}`, role: 'user', text: String(i) }])))
    t.same(responses.map((r) => r.statusCode), Array(100).fill(201))
    const stored = (await get(apps[1], id)).json()
    t.equal(stored.messages.length, 100)
    t.equal(new Set(stored.messages.map((m: Json) => m.id)).size, 100)
    t.equal(stored.version, 101)
  })

  t.test('20 parallel PATCHes with the If-Match of version 1: one 200, nineteen 412', async (t) => {
    const created = await apps[0].inject({ method: 'POST', url: '/v1/conversations', payload: { id: unique('c'), userId: unique('u') } })
    const { id } = created.json()
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      patch(on(i), id, { title: `t${i}` }, { 'if-match': created.headers.etag as string })))
    const codes = responses.map((r) => r.statusCode)
    t.equal(codes.filter((c) => c === 200).length, 1, 'one 200')
    t.equal(codes.filter((c) => c === 412).length, 19, 'nineteen 412')
    const winner = responses.find((r) => r.statusCode === 200)?.json()
    const stored = (await get(apps[1], id)).json()
    t.equal(stored.version, 2)
    t.equal(stored.title, winner?.title)
  })

  t.test('20 parallel PATCHes without If-Match all succeed and none is lost', async (t) => {
    const { id } = await create(apps[0], { userId: unique('u') })
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      patch(on(i), id, { metadata: { [`k${i}`]: i } })))
    t.same(responses.map((r) => r.statusCode), Array(20).fill(200))
    t.same(responses.map((r) => r.json().version).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 2), 'each got its own version')
    const stored = (await get(apps[0], id)).json()
    t.equal(stored.version, 21)
    t.same(stored.metadata, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), 'every merge is kept')
  })
})

t.test('/health on Redis reports the store up with latency and connection state', async (t) => {
  const app = await build(t, env)
  const response = await app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.match(body, { status: 'ok', backend: 'redis', store: { status: 'up', connection: 'ready' } })
  t.type(body.store.latencyMs, 'number')
  t.ok(body.store.latencyMs >= 0)
})

t.test('the keep-alive pings Redis every REDIS_KEEPALIVE_MS', async (t) => {
  const pings = async (): Promise<number> => {
    const info = await redis.info('commandstats')
    return Number(/^cmdstat_ping:calls=(\d+)/m.exec(info)?.[1] ?? 0)
  }
  await build(t, { ...env, REDIS_KEEPALIVE_MS: '1000' })
  const before = await pings()
  await sleep(2700)
  const after = await pings()
  t.ok(after - before >= 2, `at least 2 pings in 2.7 s (got ${after - before})`)
})

t.test('the Redis password never reaches a response or a log line', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const env2: Record<string, string> = { ...redisEnv(server2), REDIS_TIMEOUT: '300' }
  const app = await build(t, env2, { logger: { ...loggerOptions('debug'), stream } })
  const bodies: string[] = []
  const record = (response: LightMyRequestResponse): LightMyRequestResponse => {
    bodies.push(JSON.stringify(response.headers), response.body)
    return response
  }

  const userId = unique('u')
  const created = record(await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId } }))
  t.equal(created.statusCode, 201)
  const { id } = created.json()
  t.equal(record(await get(app, id)).statusCode, 200)
  t.equal(record(await append(app, id, [{ role: 'user' }])).statusCode, 201)
  t.equal(record(await list(app, userId)).statusCode, 200)
  t.equal(record(await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)

  await server2.stop()
  try {
    const unavailable = record(await get(app, id))
    t.equal(unavailable.statusCode, 503)
    t.equal(unavailable.json().code, 'STORE_UNAVAILABLE')
    t.equal(record(await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)
  } finally {
    await server2.resume()
  }
  t.equal(record(await get(app, id)).statusCode, 200, 'answers again once Redis is back')

  const log = lines.join('')
  t.match(log, /STORE_UNAVAILABLE|Command timed out/, 'the outage was logged')
  const url = env2.REDIS_URL as string
  t.ok(url.includes(PASSWORD), 'the URL does hold the password')
  for (const [name, text] of [['log', log], ['responses', bodies.join('\n')]] as const) {
    t.notOk(text.includes(PASSWORD), `no password in the ${name}`)
    t.notOk(text.includes(url), `no REDIS_URL in the ${name}`)
  }
})

t.test('a wrong Redis password fails start-up without revealing it', async (t) => {
  const wrong = 'wr0ng-pw'
  const url = server2.url.replace(encodeURIComponent(PASSWORD), wrong)
  t.ok(url.includes(wrong))
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const started = build(t, { ...redisEnv(server2), REDIS_URL: url }, { logger: { ...loggerOptions('debug'), stream } })
  await t.rejects(started)
  const error = await started.then(() => undefined, (reason: unknown) => reason)
  t.ok(error instanceof Error)
  const message = (error as Error).message
  t.match(message, /WRONGPASS|NOAUTH|password/i, 'says what is wrong')
  t.notOk(message.includes(wrong), 'not the password')
  t.notOk(message.includes(url), 'not the URL')
  t.notOk(lines.join('').includes(wrong), 'no password in the log')
})

t.test('a stream keeps its state in the document hash until it ends; its sweep entry has a TTL and goes when it is due', async (t) => {
  const app = await build(t, { ...env, STREAM_IDLE_TIMEOUT_SECONDS: '1' })
  const userId = unique('u')
  const { id } = await create(app, { id: unique('c'), userId })
  const keys = keysOf(id, userId)
  t.equal((await append(app, id, [{ id: 's', role: 'assistant', status: 'in_progress', text: 'é' }])).statusCode, 201)
  const streams = `${prefix}streams`
  t.ok(await redis.zscore(streams, `${id} s`) !== null, 'the sweep entry is written with the start')
  t.ok(await redis.pttl(streams) > 0, 'the sweep set has a TTL')
  await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages/s/deltas`, payload: { seq: 1, text: '"x' } })
  const [seq, ends, chars] = await redis.hmget(keys.doc, 's:s', 'e:s', 'n:s')
  t.same([seq, ends, chars], ['1', '2,5', '3'], 'the last seq, the byte ends of the text\'s JSON after each seq, its length in characters')
  await app.inject({ method: 'PATCH', url: `/v1/conversations/${id}/messages/s`, payload: { status: 'completed' } })
  t.same((await redis.hkeys(keys.doc)).filter((field) => /^[sena]:/.test(field)), [], 'a finished stream leaves nothing behind')
  const { id: deleted } = await create(app, { id: unique('c'), userId })
  await append(app, deleted, [{ id: 's', role: 'assistant', status: 'in_progress' }])
  await app.inject({ method: 'DELETE', url: `/v1/conversations/${deleted}` })
  const pending = async (): Promise<boolean> => await redis.zscore(streams, `${id} s`) !== null || await redis.zscore(streams, `${deleted} s`) !== null
  for (let waited = 0; await pending() && waited < 10_000; waited += 100) await sleep(100)
  t.equal(await redis.zscore(streams, `${id} s`), null, 'the sweep removes the entry of an ended stream when it comes due')
  t.equal(await redis.zscore(streams, `${deleted} s`), null, 'and of a stream whose conversation is gone')
})

t.test('conversations stored by the release before (one message list) keep working, and move to the new layout on first message use', async (t) => {
  const app = await build(t, env)
  const userId = unique('u')
  const now = Date.now()
  const message = (id: string, text: string): string => JSON.stringify({ id, role: 'user', kind: 'text', text, createdAt: new Date(now).toISOString() })
  /** A conversation as the release before wrote it: no incarnation, no positions, a list of messages. */
  const legacy = async (): Promise<{ id: string, keys: Keys, legacyList: string }> => {
    const id = unique('legacy')
    const keys = keysOf(id, userId)
    const legacyList = `${keys.doc}:messages`
    await redis.hset(keys.doc, 'body', '{"tenantId":"default","status":"active","title":"old"}', 'userId', userId, 'createdAt', now,
      'updatedAt', now, 'expiresAt', now + 60_000, 'version', 3, 'count', 2)
    await redis.rpush(legacyList, message('m1', 'first words'), message('m2', 'second words'))
    await redis.sadd(keys.messageIds, 'm1', 'm2')
    await redis.zadd(keys.index, now, id)
    for (const key of [keys.doc, legacyList, keys.messageIds]) await redis.pexpireat(key, now + 60_000)
    return { id, keys, legacyList }
  }

  const read = await legacy()
  const full = await get(app, read.id)
  t.equal(full.statusCode, 200)
  t.same(full.json().messages.map((m: Json) => m.text), ['first words', 'second words'], 'a read takes the old list as it is')
  t.same(full.json().messages.map((m: Json) => m.status), ['completed', 'completed'], 'messages from before streams read as completed')
  t.match(full.json(), { version: 3, messageCount: 2, title: 'old' })
  t.equal(full.headers.etag, '"0.3"', 'a record without an incarnation counts as incarnation 0')
  t.same((await app.inject({ method: 'GET', url: `/v1/conversations/${read.id}?lastMessages=1` })).json().messages.map((m: Json) => m.id), ['m2'])
  t.equal(await redis.exists(read.legacyList), 1, 'reads leave the old layout alone')

  const page = await app.inject({ method: 'GET', url: `/v1/conversations/${read.id}/messages?limit=1` })
  t.equal(page.statusCode, 200)
  t.same(page.json().items.map((m: Json) => m.id), ['m1'])
  t.equal(await redis.exists(read.legacyList), 0, 'the first message read migrated it')
  t.same(await redis.zrange(read.keys.order, '0', '-1'), ['m1', 'm2'])
  t.same(await redis.hgetall(read.keys.tokens), { m1: String(countTokens({ text: 'first words' })), m2: String(countTokens({ text: 'second words' })) })
  t.equal((await get(app, read.id)).json().version, 3, 'a migration is no write: the version stays')
  t.ok(await redis.pttl(read.keys.order) <= 60_000, 'and so does the expiry')
  const rest = await app.inject({ method: 'GET', url: `/v1/conversations/${read.id}/messages?limit=1&cursor=${page.json().nextCursor as string}` })
  t.same(rest.json().items.map((m: Json) => m.id), ['m2'], 'the page goes on')

  const appended = await legacy()
  const response = await append(app, appended.id, [{ id: 'm3', role: 'assistant', text: 'third' }, { id: 'm1', role: 'user' }])
  t.equal(response.statusCode, 201)
  t.match(response.json(), { appended: 1, skipped: 1, version: 4, messageCount: 3 })
  t.same((await get(app, appended.id)).json().messages.map((m: Json) => m.id), ['m1', 'm2', 'm3'], 'an append migrates, then appends')

  const patched = await legacy()
  const title = await patch(app, patched.id, { title: 'new' })
  t.equal(title.statusCode, 200)
  t.same(title.json().messages.map((m: Json) => m.id), ['m1', 'm2'], 'a PATCH of the conversation reads the old list')
  const edited = await app.inject({ method: 'PATCH', url: `/v1/conversations/${patched.id}/messages/m2`, payload: { text: 'edited' } })
  t.equal(edited.statusCode, 200)
  const deleted = await app.inject({ method: 'DELETE', url: `/v1/conversations/${patched.id}/messages/m1` })
  t.equal(deleted.statusCode, 204)
  t.same((await get(app, patched.id)).json().messages.map((m: Json) => [m.id, m.text]), [['m2', 'edited']])
})
