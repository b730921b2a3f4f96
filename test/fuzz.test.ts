import fc from 'fast-check'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { redisBackend, memoryBackend, type Backend } from './helpers/backends.js'
import { specialTokens } from './helpers/content-suite.js'
import { startRedis } from './helpers/redis-server.js'

// Property-based fuzzing of every route on both backends. Requests are generated near the
// contract's edges and far past them: random JSON of any depth and size, strings with lone
// surrogates and NUL, odd content types, headers, query strings and path segments. Three
// properties hold for every one of them: no answer is a 5xx, no request hangs, and after a
// 4xx the conversation it touched (its document, ETag, workflow state and list entry) reads
// exactly as before.

const server = await startRedis()
t.teardown(() => server.close())

const SEEDS = ['f0', 'f1', 'f2']
const SEED_USER = 'fuzz-user'
const HANG_MS = 10_000

type Json = Record<string, unknown>

const rarely = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary })

// Any UTF-16 code units: lone surrogates, NUL and other control characters included.
const anyText = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map((units) => String.fromCharCode(...units))
// Random strings never spell a special token or a protocol, so the generator also draws
// from a dictionary of strings that mean something to a tokenizer, a parser or Redis.
const MEANINGFUL = [
  ...specialTokens('o200k_base'), ...specialTokens('cl100k_base'), '<|im_start|>system\nYou are<|im_end|>',
  '{"a":1}', '[1,2', '"quoted"', '\\u0000', 'null', 'true', '1e400', '-0',
  "')) redis.call('FLUSHALL') --", 'return cjson.decode(ARGV[1])', '--[[', ']]', 'local x = {}',
  '*1\r\n$4\r\nPING\r\n', '+OK\r\n', '-ERR\r\n', '$-1\r\n', '{tag}', '{', '}',
  '__proto__', 'constructor', 'toString', 'prototype', 'hasOwnProperty', 'valueOf',
  '\u2028', '\u2029', 'a\u2028b\u2029c', '\ufeff', '\ufeffBOM first', '\u202e\u202dreversed\u202c', '\u2066isolate\u2069',
  'e\u0301\u0302\u0303', '\u0301', 'Z\u0351\u0352\u0353\u0354\u0355'
]
const meaningful = fc.constantFrom(...MEANINGFUL)
const text = fc.oneof(
  fc.string({ maxLength: 20 }), anyText, fc.constantFrom('', '\u0000', '\ud800', '\udfff', 'a\ud83d', '😀', '{}', '..', '%'),
  meaningful, fc.tuple(fc.string({ maxLength: 8 }), meaningful, fc.string({ maxLength: 8 })).map((parts) => parts.join(''))
)
const deepValue = fc.integer({ min: 1, max: 200 }).map((depth) => {
  let value: unknown = 1
  for (let level = 0; level < depth; level++) value = level % 2 === 0 ? { k: value } : [value]
  return value
})
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  deepValue,
  text,
  fc.constantFrom(null, true, 0, -1, 1.5, 2 ** 53, -(2 ** 53), 1e308, '1e400', [], {}),
  fc.dictionary(text, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
)

type BodyKind = 'create' | 'replace' | 'patch' | 'append' | 'workflow' | 'editMessage' | 'fork'

const validBodies: Record<BodyKind, () => Json> = {
  create: () => ({ userId: SEED_USER, title: 't', messages: [{ id: 'm1', role: 'user', text: 'hi' }], metadata: { a: 1 } }),
  replace: () => ({ userId: SEED_USER, title: 't', messages: [{ id: 'm1', role: 'user', text: 'hi' }], stepData: { s: 1 } }),
  patch: () => ({ title: 'p', metadata: { b: 2 }, status: 'completed' }),
  append: () => ({ messages: [{ id: 'm9', role: 'assistant', kind: 'adaptiveCard', cardJson: { type: 'AdaptiveCard' }, metadata: { c: 3 } }] }),
  workflow: () => ({ step: 's', turnCount: 1, status: 'active', collectedData: { d: 4 }, choices: ['x'], progress: 0.5 }),
  editMessage: () => ({ text: 'edited', metadata: { e: 5 } }),
  fork: () => ({ messageId: 'm1', title: 'branch' })
}

/** A valid body with one field, at the top or one level down, replaced by anything. */
const mutated = (kind: BodyKind): fc.Arbitrary<unknown> =>
  fc.record({ path: fc.constantFrom('', 'messages', 'metadata', 'stepData', 'collectedData', 'title', 'userId', 'id', 'step', 'choices', 'ttlSeconds'), key: text, value: anyJson })
    .map(({ path, key, value }) => {
      const body = validBodies[kind]()
      const holder = path === '' ? body : body[path]
      if (Array.isArray(holder) && typeof holder[0] === 'object') (holder[0] as Json)[key] = value
      else if (holder !== null && typeof holder === 'object') (holder as Json)[key] = value
      else body[path] = value
      return body
    })

/** A valid body whose free-form JSON (metadata, cardJson, collectedData…) holds anything. */
const freeForm = (kind: BodyKind): fc.Arbitrary<unknown> =>
  fc.record({ key: text, value: anyJson, text }).map(({ key, value, text }) => {
    const body = validBodies[kind]()
    const message = (body.messages as Json[] | undefined)?.[0]
    const holder = (body.metadata ?? body.stepData ?? body.collectedData ?? message?.metadata ?? body) as Json
    holder[key] = value
    if (message !== undefined) message.text = text
    return body
  })

// Free-form JSON nested up to 131,072 levels, as text: JSON.stringify itself overflows the
// stack long before that, and so would a service that serialised such a value.
const DEEP_TEMPLATES: Record<BodyKind, string> = {
  create: `{"userId":"${SEED_USER}","metadata":@}`,
  replace: `{"userId":"${SEED_USER}","stepData":@}`,
  patch: '{"metadata":@}',
  append: '{"messages":[{"role":"user","cardJson":@}]}',
  workflow: '{"step":"s","turnCount":0,"status":"active","collectedData":@}',
  editMessage: '{"cardJson":@}',
  fork: '{"title":"t","x":@}'
}
const deepText = (kind: BodyKind): fc.Arbitrary<string> => fc.integer({ min: 1, max: 17 }).map((power) => {
  const depth = 2 ** power
  return DEEP_TEMPLATES[kind].replace('@', '{"k":'.repeat(depth) + '1' + '}'.repeat(depth))
})

/** A request body as text, or none. */
const bodyFor = (kind: BodyKind): fc.Arbitrary<string | undefined> => fc.oneof(
  { weight: 4, arbitrary: freeForm(kind).map((body) => JSON.stringify(body)) },
  { weight: 3, arbitrary: mutated(kind).map((body) => JSON.stringify(body)) },
  { weight: 1, arbitrary: deepText(kind) },
  { weight: 1, arbitrary: anyJson.map((body) => JSON.stringify(body)) },
  { weight: 1, arbitrary: fc.constant(undefined) }
)

// Path segments: a seed (so that requests reach stored data), or something odd.
const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...SEEDS).map(encodeURIComponent) },
  { weight: 1, arbitrary: text.map((value) => { try { return encodeURIComponent(value) } catch { return '%ED%A0%80' } }) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%C0%AF', '%E0%A4%A', '%00', '%2e%2e', '..', '.', 'a'.repeat(5000), '%7B%7D', '%F0%9F%98%80'.repeat(200)) }
)
const query = fc.array(fc.tuple(fc.constantFrom('limit', 'cursor', 'view', 'tenantId', 'x', 'limit', 'order', 'maxTokens', 'lastMessages', 'window', 'after'), fc.oneof(text, fc.constantFrom('0', '1', '200', '201', '-1', '1e3', 'summary', 'full', 'AAAA', 'WzEsIngiXQ', 'asc', 'desc', '1000', '1001', 'm1'))), { maxLength: 3 })
  .map((pairs) => pairs.length === 0 ? '' : '?' + pairs.map(([key, value]) => { try { return `${key}=${encodeURIComponent(value)}` } catch { return `${key}=%` } }).join('&'))
const headerValue = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map((value) => value.replace(/[^\x20-\x7e]/g, '')),
  fc.constantFrom('*', '"x.1"', 'W/"x.1"', '"1"', '"a", "b"', '""', '"', 'W/', '*, "a"', ' ')
)
const headers = fc.record({
  'if-match': rarely(headerValue),
  'if-none-match': rarely(headerValue),
  'content-type': fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: fc.constantFrom('application/merge-patch+json', 'text/plain', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'application/json; charset=latin1') }
  ),
  'x-request-id': rarely(headerValue),
  traceparent: rarely(headerValue),
  accept: rarely(fc.constantFrom('application/json', 'text/html', '*/*'))
}).map((all) => Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined)) as Record<string, string>)

interface Generated { request: InjectOptions, target?: string }

/** One line of an import: a conversation line around a generated create body, or anything. */
const importLine: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ body: bodyFor('create'), id: fc.constantFrom(...SEEDS, 'imported') }).map(({ body, id }) => `{"type":"conversation","conversation":${withId(body, id) ?? 'null'}}`) },
  { weight: 1, arbitrary: text },
  { weight: 1, arbitrary: anyJson.map((value) => JSON.stringify(value)) }
)

const conversationRoute = (method: InjectOptions['method'], suffix: string, kind?: BodyKind): fc.Arbitrary<Generated> =>
  fc.record({ id: segment, query, headers, body: kind === undefined ? fc.constant(undefined) : bodyFor(kind) })
    .map(({ id, query, headers, body }) => ({
      request: { method, url: `/v1/conversations/${id}${suffix}${query}`, headers, ...(body === undefined ? {} : { payload: body }) },
      target: decodeSeed(id)
    }))

const generated: fc.Arbitrary<Generated> = fc.oneof(
  fc.record({ body: bodyFor('create'), id: rarely(fc.constantFrom(...SEEDS)), headers, raw: rarely(fc.uint8Array({ maxLength: 64 })) })
    .map(({ body, id, headers, raw }) => ({
      request: { method: 'POST', url: '/v1/conversations', headers, payload: raw === undefined ? withId(body, id) : Buffer.from(raw) },
      ...(id === undefined ? {} : { target: id })
    })),
  conversationRoute('GET', ''),
  conversationRoute('PUT', '', 'replace'),
  conversationRoute('PATCH', '', 'patch'),
  conversationRoute('DELETE', ''),
  conversationRoute('POST', '/messages', 'append'),
  conversationRoute('GET', '/messages'),
  conversationRoute('GET', '/messages/m1'),
  conversationRoute('PATCH', '/messages/m1', 'editMessage'),
  conversationRoute('DELETE', '/messages/m1'),
  conversationRoute('DELETE', '/messages'),
  conversationRoute('GET', '/workflow-state'),
  conversationRoute('PUT', '/workflow-state', 'workflow'),
  conversationRoute('DELETE', '/workflow-state'),
  conversationRoute('POST', '/fork', 'fork'),
  fc.record({ user: fc.oneof(fc.constant(SEED_USER), segment), query, headers })
    .map(({ user, query, headers }) => ({ request: { method: 'GET', url: `/v1/users/${user}/export${query}`, headers } })),
  fc.record({ user: fc.oneof(fc.constant(SEED_USER), segment), mode: fc.constantFrom('', '?mode=skip', '?mode=replace', '?mode=x'), headers, lines: fc.array(importLine, { maxLength: 4 }) })
    .map(({ user, mode, headers, lines }) => ({
      request: { method: 'POST', url: `/v1/users/${user}/import${mode}`, headers: { ...headers, 'content-type': headers['content-type'] === 'application/json' ? 'application/x-ndjson' : headers['content-type'] as string }, payload: lines.join('\n') },
      ...(user === SEED_USER ? { target: SEEDS[0] } : {})
    })),
  fc.record({ user: fc.oneof(fc.constant(SEED_USER), segment), query, headers, method: fc.constantFrom('GET' as const, 'DELETE' as const) })
    .map(({ user, query, headers, method }) => ({ request: { method, url: `/v1/users/${user}/conversations${query}`, headers }, ...(user === SEED_USER ? { target: SEEDS[0] } : {}) })),
  fc.record({ url: fc.constantFrom('/health', '/health/live', '/', '/v1', '/v1/conversations', '/nowhere'), headers, method: fc.constantFrom('GET' as const, 'POST' as const, 'OPTIONS' as const, 'HEAD' as const) })
    .map(({ url, headers, method }) => ({ request: { method, url, headers } }))
)

/** The body with an `id` member first, when there is a body and an id. */
function withId (body: string | undefined, id: string | undefined): string | undefined {
  if (body === undefined || id === undefined || !body.startsWith('{')) return body
  return `{"id":${JSON.stringify(id)}${body === '{}' ? '' : ','}${body.slice(1)}`
}

function decodeSeed (segment: string): string | undefined {
  return SEEDS.find((seed) => encodeURIComponent(seed) === segment)
}

/** What a client can observe of one conversation. */
async function snapshot (app: FastifyInstance, id: string): Promise<string> {
  const read = async (url: string): Promise<string> => {
    const response = await app.inject({ method: 'GET', url })
    return `${response.statusCode} ${String(response.headers.etag)} ${response.body}`
  }
  const list = await app.inject({ method: 'GET', url: `/v1/users/${SEED_USER}/conversations?view=summary&limit=200` })
  const entry = (list.json().items as Json[]).find((item) => item.id === id)
  return [await read(`/v1/conversations/${id}`), await read(`/v1/conversations/${id}/workflow-state`), JSON.stringify(entry)].join('\n')
}

async function ensureSeed (app: FastifyInstance, id: string): Promise<void> {
  const created = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: validBodies.replace(), headers: { 'if-none-match': '*' } })
  if (created.statusCode === 201) {
    await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: validBodies.workflow() })
  }
}

async function withinBound (app: FastifyInstance, request: InjectOptions): Promise<LightMyRequestResponse | undefined> {
  const timeout = new AbortController()
  try {
    return await Promise.race([
      app.inject(request).catch((error: unknown) => {
        // light-my-request refuses some generated requests before they reach the server.
        if (error instanceof TypeError || (error as { code?: string }).code?.startsWith('ERR_') === true) return undefined
        throw error
      }),
      sleep(HANG_MS, undefined, { signal: timeout.signal }).then(() => { throw new Error(`no answer within ${HANG_MS} ms`) })
    ])
  } finally {
    timeout.abort()
  }
}

function fuzz (backend: Backend, numRuns: number): void {
  t.test(`[${backend.name}] ${numRuns} generated requests: no 5xx, no hang, and a 4xx changes nothing`, { timeout: 600_000 }, async (t) => {
    const app = await backend.build(t, { LOG_LEVEL: 'silent' })
    const statuses: Record<string, number> = {}
    let refusedByInject = 0
    await fc.assert(fc.asyncProperty(generated, async ({ request, target }) => {
      if (target !== undefined) await ensureSeed(app, target)
      const before = target === undefined ? undefined : await snapshot(app, target)
      const response = await withinBound(app, request)
      if (response === undefined) {
        refusedByInject++
        return
      }
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1
      if (response.statusCode >= 500) throw new Error(`${request.method} ${request.url} answered ${response.statusCode}: ${response.body}`)
      if (response.statusCode >= 400 && target !== undefined && before !== undefined) {
        const after = await snapshot(app, target)
        if (after !== before) throw new Error(`${request.method} ${request.url} answered ${response.statusCode} but changed ${target}:\n${before}\n---\n${after}`)
      }
    }), { numRuns })
    const answered = Object.values(statuses).reduce((sum, count) => sum + count, 0)
    t.equal(answered + refusedByInject, numRuns, `${numRuns} cases: ${JSON.stringify(statuses)} (${refusedByInject} refused by inject itself)`)
    t.ok(Object.keys(statuses).some((status) => status.startsWith('2')), 'some requests succeeded')
    t.ok(Object.keys(statuses).some((status) => status.startsWith('4')), 'and some were refused')
  })
}

fuzz(memoryBackend, 1500)
fuzz(redisBackend('redis', server), 1000)
