import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { Backend } from './backends.js'
import { chatTurnSuite } from './chat-turn-suite.js'
import { contentSuite } from './content-suite.js'
import { retentionSuite } from './retention-suite.js'
import { rewindSuite } from './rewind-suite.js'
import { forkSuite } from './fork-suite.js'
import { userDataSuite } from './user-data-suite.js'
import { edgeSuite } from './edge-suite.js'
import { messageSuite } from './message-suite.js'
import { streamSuite } from './stream-suite.js'
import { eventsSuite } from './events-suite.js'
import { userEventsSuite } from './user-events-suite.js'

// The API contract as tests, run once per backend. Every test uses its own ids, so
// backends that share a server (Redis) need no cleaning between tests.

type Json = Record<string, any>

export const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

export async function create (app: FastifyInstance, body: Json): Promise<Json> {
  const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: body })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.statusCode} ${response.body}`)
  return response.json()
}

const append = (app: FastifyInstance, id: string, messages: Json[], headers: Json = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages }, headers })

const list = (app: FastifyInstance, userId: string, query = ''): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations${query}` })

/** A strong entity tag; its content is opaque (it names the incarnation and the version). */
const STRONG_TAG = /^"[^",]+"$/

/** Creates a conversation and answers its body fields with the ETag of the create. */
async function createTagged (app: FastifyInstance, body: Json): Promise<Json & { etag: string }> {
  const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: body })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.statusCode} ${response.body}`)
  return { ...response.json(), etag: response.headers.etag as string }
}

function omitTag ({ etag: _etag, ...body }: Json): Json {
  return body
}

function assertError (tt: Test, response: LightMyRequestResponse, statusCode: number, code: string): void {
  tt.equal(response.statusCode, statusCode, `status ${statusCode}`)
  tt.match(response.headers['content-type'], /application\/json/)
  const body = response.json()
  tt.equal(body.code, code, `code ${code}`)
  tt.equal(body.statusCode, statusCode)
  tt.type(body.error, 'string')
  tt.type(body.message, 'string')
  tt.notMatch(response.body, /\bat .*\.(ts|js):\d+/, 'no stack trace')
}

export function apiSuite (backend: Backend): void {
  const { build } = backend
  edgeSuite(backend)
  messageSuite(backend)
  streamSuite(backend)
  eventsSuite(backend)
  userEventsSuite(backend)
  contentSuite(backend)
  chatTurnSuite(backend)
  retentionSuite(backend)
  rewindSuite(backend)
  forkSuite(backend)
  userDataSuite(backend)

  t.test(`[${backend.name}] create`, async (t) => {
    const app = await build(t)

    t.test('answers 201 with Location, ETag and the server-set fields', async (t) => {
      const id = unique('c')
      const response = await app.inject({
        method: 'POST',
        url: '/v1/conversations',
        payload: { id, userId: 'u1', title: 'Hello', messages: [{ role: 'user', text: 'hi' }] }
      })
      t.equal(response.statusCode, 201)
      t.equal(response.headers.location, `/v1/conversations/${id}`)
      t.match(response.headers.etag, STRONG_TAG)
      const body = response.json()
      t.match(body, { id, userId: 'u1', tenantId: 'default', status: 'active', title: 'Hello', version: 1 })
      t.match(body.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      t.equal(body.updatedAt, body.createdAt)
      t.equal(Date.parse(body.expiresAt) - Date.parse(body.updatedAt), 86400 * 1000)
      t.equal(body.messages.length, 1)
      t.match(body.messages[0], { role: 'user', kind: 'text', text: 'hi', createdAt: body.createdAt })
      t.match(body.messages[0].id, /^[0-9a-f-]{36}$/)
    })

    t.test('generates a UUID when no id is given', async (t) => {
      const body = await create(app, { userId: 'u1' })
      t.match(body.id, /^[0-9a-f-]{36}$/)
      t.same(body.messages, [])
    })

    t.test('normalises a client createdAt to UTC with milliseconds', async (t) => {
      const body = await create(app, { userId: 'u1', messages: [{ role: 'user', createdAt: '2026-01-02T03:04:05+01:00' }] })
      t.equal(body.messages[0].createdAt, '2026-01-02T02:04:05.000Z')
    })

    t.test('answers 409 when the id exists, and keeps the original', async (t) => {
      const id = unique('c')
      await create(app, { id, userId: 'u1', title: 'first' })
      const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u2' } })
      assertError(t, response, 409, 'CONVERSATION_EXISTS')
      const stored = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
      t.equal(stored.json().title, 'first')
    })

    const invalid: Array<[string, Json | string]> = [
      ['an unknown field', { userId: 'u1', colour: 'red' }],
      ['an unknown message field', { userId: 'u1', messages: [{ role: 'user', mood: 'happy' }] }],
      ['a missing userId', {}],
      ['a userId with whitespace', { userId: 'a b' }],
      ['a userId with braces', { userId: 'a{b}' }],
      ['a userId with a control character', { userId: 'a\u0007b' }],
      ['a userId over 256 characters', { userId: 'u'.repeat(257) }],
      ['a tenantId with whitespace', { userId: 'u1', tenantId: 't 1' }],
      ['an id with a slash', { id: 'a/b', userId: 'u1' }],
      ['an id over 128 characters', { id: 'a'.repeat(129), userId: 'u1' }],
      ['a title over 200 characters', { userId: 'u1', title: 't'.repeat(201) }],
      ['an unknown status', { userId: 'u1', status: 'paused' }],
      ['a negative currentStep', { userId: 'u1', currentStep: -1 }],
      ['a fractional currentStep', { userId: 'u1', currentStep: 1.5 }],
      ['stepData that is not an object', { userId: 'u1', stepData: [1, 2] }],
      ['an unknown role', { userId: 'u1', messages: [{ role: 'robot' }] }],
      ['an unknown kind', { userId: 'u1', messages: [{ role: 'user', kind: 'video' }] }],
      ['a bad message createdAt', { userId: 'u1', messages: [{ role: 'user', createdAt: 'yesterday' }] }],
      ['duplicate message ids', { userId: 'u1', messages: [{ id: 'm1', role: 'user' }, { id: 'm1', role: 'user' }] }],
      ['a body that is not an object', '[1,2,3]']
    ]
    for (const [name, payload] of invalid) {
      t.test(`answers 400 for ${name}`, async (t) => {
        const response = await app.inject({
          method: 'POST', url: '/v1/conversations', payload, headers: { 'content-type': 'application/json' }
        })
        assertError(t, response, 400, 'FST_ERR_VALIDATION')
      })
    }

    t.test('answers 400 for malformed JSON', async (t) => {
      const response = await app.inject({
        method: 'POST', url: '/v1/conversations', payload: '{"userId":', headers: { 'content-type': 'application/json' }
      })
      t.equal(response.statusCode, 400)
      t.equal(response.json().statusCode, 400)
      t.type(response.json().code, 'string')
    })

    t.test('answers 400 for a __proto__ key', async (t) => {
      const response = await app.inject({
        method: 'POST', url: '/v1/conversations', payload: '{"userId":"u1","__proto__":{"x":1}}', headers: { 'content-type': 'application/json' }
      })
      t.equal(response.statusCode, 400)
    })

    t.test('answers 415 for a body that is not JSON', async (t) => {
      const response = await app.inject({
        method: 'POST', url: '/v1/conversations', payload: '<userId>u1</userId>', headers: { 'content-type': 'application/xml' }
      })
      assertError(t, response, 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    })
  })

  t.test(`[${backend.name}] limits`, async (t) => {
    const app = await build(t, { BODY_LIMIT: '2048', MAX_MESSAGES_PER_CONVERSATION: '3' })

    t.test('answers 413 for a body over BODY_LIMIT', async (t) => {
      const id = unique('c')
      const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', title: 'x'.repeat(4000) } })
      assertError(t, response, 413, 'FST_ERR_CTP_BODY_TOO_LARGE')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 404)
    })

    t.test('answers 413 TOO_MANY_MESSAGES on create beyond the limit', async (t) => {
      const id = unique('c')
      const messages = [1, 2, 3, 4].map((n) => ({ id: `m${n}`, role: 'user' }))
      const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages } })
      assertError(t, response, 413, 'TOO_MANY_MESSAGES')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 404)
    })

    t.test('an append beyond the limit is 413 and appends nothing', async (t) => {
      const { id } = await create(app, { userId: 'u1', messages: [{ id: 'm1', role: 'user' }, { id: 'm2', role: 'user' }] })
      const response = await append(app, id, [{ id: 'm3', role: 'user' }, { id: 'm4', role: 'user' }])
      assertError(t, response, 413, 'TOO_MANY_MESSAGES')
      const stored = (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json()
      t.equal(stored.messages.length, 2)
      t.equal(stored.version, 1)
      const fits = await append(app, id, [{ id: 'm1', role: 'user' }, { id: 'm3', role: 'user' }])
      t.equal(fits.statusCode, 201, 'duplicates do not count against the limit')
      t.match(fits.json(), { appended: 1, skipped: 1, messageCount: 3 })
    })

    t.test('a PUT beyond the limit is 413 and changes nothing', async (t) => {
      const { id } = await create(app, { userId: 'u1', title: 'kept' })
      const messages = [1, 2, 3, 4].map((n) => ({ id: `m${n}`, role: 'user' }))
      const response = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1', messages } })
      assertError(t, response, 413, 'TOO_MANY_MESSAGES')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json().title, 'kept')
    })
  })

  t.test(`[${backend.name}] read`, async (t) => {
    const app = await build(t)

    t.test('answers 200 with the ETag of the version', async (t) => {
      const id = unique('c')
      const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', title: 'x' } })
      const response = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
      t.equal(response.statusCode, 200)
      t.equal(response.headers.etag, created.headers.etag)
      t.same(response.json(), created.json())
    })

    t.test('answers 404 for a missing conversation', async (t) => {
      assertError(t, await app.inject({ method: 'GET', url: `/v1/conversations/${unique('missing')}` }), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('answers 400 for a malformed id', async (t) => {
      assertError(t, await app.inject({ method: 'GET', url: '/v1/conversations/a%20b' }), 400, 'FST_ERR_VALIDATION')
    })

    t.test('answers 304 when If-None-Match names the current version', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      for (const tag of [etag, `W/${etag}`, `"x.0", ${etag}`, '*']) {
        const response = await app.inject({ method: 'GET', url: `/v1/conversations/${id}`, headers: { 'if-none-match': tag } })
        t.equal(response.statusCode, 304, tag)
        t.equal(response.body, '')
        t.equal(response.headers.etag, etag)
      }
      for (const tag of ['"1"', 'W/"1"']) {
        const stale = await app.inject({ method: 'GET', url: `/v1/conversations/${id}`, headers: { 'if-none-match': tag } })
        t.equal(stale.statusCode, 200, `${tag}: a bare version is no longer an ETag`)
      }
    })

    t.test('answers 400 for a malformed If-None-Match', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const response = await app.inject({ method: 'GET', url: `/v1/conversations/${id}`, headers: { 'if-none-match': 'abc' } })
      assertError(t, response, 400, 'FST_ERR_VALIDATION')
    })
  })

  t.test(`[${backend.name}] replace`, async (t) => {
    const app = await build(t)

    t.test('creates with 201 and replaces with 200, messages included', async (t) => {
      const id = unique('c')
      const first = await app.inject({
        method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1', title: 'one', messages: [{ id: 'a', role: 'user' }] }
      })
      t.equal(first.statusCode, 201)
      t.equal(first.headers.location, `/v1/conversations/${id}`)
      t.match(first.headers.etag, STRONG_TAG)
      const second = await app.inject({
        method: 'PUT', url: `/v1/conversations/${id}`, payload: { id, userId: 'u1', status: 'completed', messages: [{ id: 'b', role: 'assistant' }] }
      })
      t.equal(second.statusCode, 200)
      t.match(second.headers.etag, STRONG_TAG)
      t.not(second.headers.etag, first.headers.etag, 'a new version has a new tag')
      const body = second.json()
      t.match(body, { id, version: 2, status: 'completed', createdAt: first.json().createdAt })
      t.notOk('title' in body, 'a full replacement drops fields it does not name')
      t.same(body.messages.map((m: Json) => m.id), ['b'])
    })

    t.test('answers 409 USER_MISMATCH when userId changes', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      assertError(t, await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u2' } }), 409, 'USER_MISMATCH')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json().userId, 'u1')
    })

    t.test('answers 400 when the body id differs from the path', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      assertError(t, await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { id: 'other', userId: 'u1' } }), 400, 'FST_ERR_VALIDATION')
    })

    t.test('honours If-Match', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      for (const tag of ['"1"', 'W/"1"', `W/${etag}`, etag.replace(/\.1"$/, '.2"')]) {
        const stale = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1' }, headers: { 'if-match': tag } })
        assertError(t, stale, 412, 'PRECONDITION_FAILED')
      }
      const fresh = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1' }, headers: { 'if-match': `"x.5", ${etag}` } })
      t.equal(fresh.statusCode, 200)
      const any = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1' }, headers: { 'if-match': '*' } })
      t.equal(any.statusCode, 200)
      t.equal(any.json().version, 3)
    })

    t.test('If-Match on a missing conversation answers 412 and creates nothing', async (t) => {
      const id = unique('c')
      for (const tag of ['"1"', '*']) {
        const response = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1' }, headers: { 'if-match': tag } })
        assertError(t, response, 412, 'PRECONDITION_FAILED')
      }
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 404)
    })

    t.test('If-None-Match: * creates only', async (t) => {
      const id = unique('c')
      const headers = { 'if-none-match': '*' }
      const first = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1', title: 'a' }, headers })
      t.equal(first.statusCode, 201)
      const second = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1', title: 'b' }, headers })
      assertError(t, second, 412, 'PRECONDITION_FAILED')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json().title, 'a')
    })

    t.test('answers 400 for If-None-Match other than *', async (t) => {
      const response = await app.inject({ method: 'PUT', url: `/v1/conversations/${unique('c')}`, payload: { userId: 'u1' }, headers: { 'if-none-match': '"1"' } })
      assertError(t, response, 400, 'FST_ERR_VALIDATION')
    })

    t.test('answers 400 for a malformed If-Match', async (t) => {
      const response = await app.inject({ method: 'PUT', url: `/v1/conversations/${unique('c')}`, payload: { userId: 'u1' }, headers: { 'if-match': '1' } })
      assertError(t, response, 400, 'FST_ERR_VALIDATION')
    })
  })

  t.test(`[${backend.name}] patch`, async (t) => {
    const app = await build(t)
    const patch = (id: string, payload: unknown, headers: Json = {}): Promise<LightMyRequestResponse> =>
      app.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: payload as Json, headers })

    t.test('merges as RFC 7396: null removes, objects merge recursively', async (t) => {
      const { id, etag } = await createTagged(app, {
        userId: 'u1',
        title: 'old',
        workflowId: 'wf',
        currentStep: 2,
        stepData: { a: 1, nested: { keep: true, drop: 1 } },
        metadata: { x: 1 },
        messages: [{ id: 'm1', role: 'user' }]
      })
      const response = await patch(id, { title: null, status: 'completed', stepData: { b: 2, nested: { drop: null } }, metadata: null, currentStep: 3 })
      t.equal(response.statusCode, 200)
      t.match(response.headers.etag, STRONG_TAG)
      t.not(response.headers.etag, etag)
      const body = response.json()
      t.notOk('title' in body)
      t.notOk('metadata' in body)
      t.match(body, { status: 'completed', workflowId: 'wf', currentStep: 3, version: 2 })
      t.same(body.stepData, { a: 1, b: 2, nested: { keep: true } })
      t.equal(body.messages.length, 1, 'messages untouched')
    })

    t.test('accepts application/merge-patch+json', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const response = await app.inject({
        method: 'PATCH', url: `/v1/conversations/${id}`, payload: '{"title":"t"}', headers: { 'content-type': 'application/merge-patch+json' }
      })
      t.equal(response.statusCode, 200)
      t.equal(response.json().title, 't')
    })

    t.test('every PATCH is a write: version and updatedAt move', async (t) => {
      const created = await create(app, { userId: 'u1' })
      await sleep(5)
      const body = (await patch(created.id, {})).json()
      t.equal(body.version, 2)
      t.ok(body.updatedAt > created.updatedAt)
      t.ok(body.expiresAt > created.expiresAt)
    })

    for (const [name, payload] of [
      ['a null status', { status: null }],
      ['messages', { messages: [] }],
      ['userId', { userId: 'u2' }],
      ['id', { id: 'x' }],
      ['an unknown field', { colour: 'red' }]
    ] as const) {
      t.test(`answers 400 for ${name}`, async (t) => {
        const { id } = await create(app, { userId: 'u1', status: 'active' })
        assertError(t, await patch(id, payload), 400, 'FST_ERR_VALIDATION')
        const stored = (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json()
        t.match(stored, { version: 1, status: 'active', userId: 'u1' })
      })
    }

    t.test('answers 404 for a missing conversation', async (t) => {
      assertError(t, await patch(unique('missing'), { title: 'x' }), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('honours If-Match', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      assertError(t, await patch(id, { title: 'x' }, { 'if-match': '"1"' }), 412, 'PRECONDITION_FAILED')
      t.equal((await patch(id, { title: 'y' }, { 'if-match': etag })).statusCode, 200)
      assertError(t, await patch(id, { title: 'z' }, { 'if-match': etag }), 412, 'PRECONDITION_FAILED')
    })
  })

  t.test(`[${backend.name}] delete`, async (t) => {
    const app = await build(t)

    t.test('answers 204, then 404', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const response = await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}` })
      t.equal(response.statusCode, 204)
      t.equal(response.body, '')
      assertError(t, await app.inject({ method: 'GET', url: `/v1/conversations/${id}` }), 404, 'CONVERSATION_NOT_FOUND')
      assertError(t, await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}` }), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('honours If-Match', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      assertError(t, await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}`, headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED')
      t.equal((await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}`, headers: { 'if-match': etag } })).statusCode, 204)
    })

    t.test('an ETag from before a delete never matches the conversation created after it', async (t) => {
      const id = unique('c')
      const old = await createTagged(app, { id, userId: 'u1', title: 'old' })
      t.equal((await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}` })).statusCode, 204)
      const again = await createTagged(app, { id, userId: 'u1', title: 'new' })
      t.equal(again.version, 1, 'versions start again at 1')
      t.not(again.etag, old.etag)
      const read = await app.inject({ method: 'GET', url: `/v1/conversations/${id}`, headers: { 'if-none-match': old.etag } })
      t.equal(read.statusCode, 200, 'no 304 for a tag of the old conversation')
      const headers = { 'if-match': old.etag }
      assertError(t, await app.inject({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1' }, headers }), 412, 'PRECONDITION_FAILED')
      assertError(t, await app.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { title: 'x' }, headers }), 412, 'PRECONDITION_FAILED')
      assertError(t, await append(app, id, [{ role: 'user' }], headers), 412, 'PRECONDITION_FAILED')
      assertError(t, await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}`, headers }), 412, 'PRECONDITION_FAILED')
      t.same((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json(), omitTag(again), 'nothing changed')
    })

    t.test('removes the conversation from its user list', async (t) => {
      const userId = unique('u')
      const { id } = await create(app, { userId })
      await create(app, { userId })
      await app.inject({ method: 'DELETE', url: `/v1/conversations/${id}` })
      const items = (await list(app, userId)).json().items
      t.equal(items.length, 1)
      t.not(items[0].id, id)
    })
  })

  t.test(`[${backend.name}] append`, async (t) => {
    const app = await build(t)

    t.test('appends in order and answers 201 with counts and the new ETag', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1', messages: [{ id: 'm0', role: 'system' }] })
      const response = await append(app, id, [
        { id: 'm1', role: 'user', text: 'hi' },
        { role: 'assistant', kind: 'adaptiveCard', cardJson: { type: 'AdaptiveCard' }, cardId: 'card-1', metadata: { k: 1 } }
      ])
      t.equal(response.statusCode, 201)
      t.match(response.headers.etag, STRONG_TAG)
      t.not(response.headers.etag, etag)
      const read = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
      t.equal(read.headers.etag, response.headers.etag, 'the tag of the version the append made')
      t.same(response.json(), { appended: 2, skipped: 0, version: 2, messageCount: 3 })
      const stored = (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json()
      t.same(stored.messages.map((m: Json) => m.id).slice(0, 2), ['m0', 'm1'])
      t.match(stored.messages[2], { role: 'assistant', kind: 'adaptiveCard', cardJson: { type: 'AdaptiveCard' }, cardId: 'card-1', metadata: { k: 1 } })
      t.equal(stored.version, 2)
    })

    t.test('skips ids already present, so a retry is safe', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const batch = [{ id: 'a', role: 'user' }, { id: 'b', role: 'user' }]
      t.match((await append(app, id, batch)).json(), { appended: 2, skipped: 0 })
      const partial = await append(app, id, [{ id: 'b', role: 'user' }, { id: 'c', role: 'user' }, { id: 'c', role: 'user' }])
      t.equal(partial.statusCode, 201)
      t.same(partial.json(), { appended: 1, skipped: 2, version: 3, messageCount: 3 })
    })

    t.test('an append of duplicates only changes nothing and answers 200', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1', messages: [{ id: 'a', role: 'user' }] })
      const before = (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json()
      await sleep(5)
      const response = await append(app, id, [{ id: 'a', role: 'user', text: 'changed' }])
      t.equal(response.statusCode, 200)
      t.same(response.json(), { appended: 0, skipped: 1, version: 1, messageCount: 1 })
      t.equal(response.headers.etag, etag)
      t.same((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json(), before)
    })

    t.test('moves updatedAt and expiresAt', async (t) => {
      const created = await create(app, { userId: 'u1' })
      await sleep(5)
      await append(app, created.id, [{ role: 'user' }])
      const stored = (await app.inject({ method: 'GET', url: `/v1/conversations/${created.id}` })).json()
      t.ok(stored.updatedAt > created.updatedAt)
      t.ok(stored.expiresAt > created.expiresAt)
      t.equal(stored.createdAt, created.createdAt)
    })

    t.test('answers 404 for a missing conversation', async (t) => {
      assertError(t, await append(app, unique('missing'), [{ role: 'user' }]), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('answers 400 for no messages or more than 100', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      assertError(t, await append(app, id, []), 400, 'FST_ERR_VALIDATION')
      const many = Array.from({ length: 101 }, () => ({ role: 'user' }))
      assertError(t, await append(app, id, many), 400, 'FST_ERR_VALIDATION')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json().messages.length, 0)
    })

    t.test('honours If-Match', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      assertError(t, await append(app, id, [{ role: 'user' }], { 'if-match': '"1"' }), 412, 'PRECONDITION_FAILED')
      t.equal((await append(app, id, [{ role: 'user' }], { 'if-match': etag })).statusCode, 201)
      assertError(t, await append(app, id, [{ role: 'user' }], { 'if-match': etag }), 412, 'PRECONDITION_FAILED')
    })
  })

  t.test(`[${backend.name}] list`, async (t) => {
    const app = await build(t)

    t.test('lists newest updatedAt first, then by id descending', async (t) => {
      const userId = unique('u')
      const a = await create(app, { id: unique('a'), userId })
      await sleep(5)
      const b = await create(app, { id: unique('b'), userId })
      await sleep(5)
      await append(app, a.id, [{ role: 'user' }])
      const response = await list(app, userId)
      t.equal(response.statusCode, 200)
      const { items, nextCursor } = response.json()
      t.same(items.map((c: Json) => c.id), [a.id, b.id])
      t.equal(nextCursor, null)
      t.equal(items[0].messages.length, 1, 'the full view has messages')
    })

    t.test('breaks ties in updatedAt by id, descending', async (t) => {
      const userId = unique('u')
      const ids = ['x1', 'x3', 'x2'].map((x) => unique(x))
      // PUT with the same body at the same millisecond is not guaranteed, so check the order rule on what we get.
      for (const id of ids) await create(app, { id, userId })
      const items = (await list(app, userId)).json().items as Json[]
      const sorted = [...items].sort((p, q) => (q.updatedAt.localeCompare(p.updatedAt)) || (q.id < p.id ? -1 : 1))
      t.same(items.map((c) => c.id), sorted.map((c) => c.id))
    })

    t.test('pages with an opaque cursor until nextCursor is null', async (t) => {
      const userId = unique('u')
      const ids: string[] = []
      for (let i = 0; i < 7; i++) ids.push((await create(app, { userId })).id)
      const seen: string[] = []
      let cursor: string | null = null
      let pages = 0
      do {
        const query: string = `?limit=3${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
        const page = (await list(app, userId, query)).json()
        pages++
        t.ok(page.items.length === 3 || page.nextCursor === null, 'only the last page is short')
        seen.push(...page.items.map((c: Json) => c.id))
        cursor = page.nextCursor
      } while (cursor !== null)
      t.equal(pages, 3)
      t.same([...seen].sort(), [...ids].sort())
      t.equal(new Set(seen).size, 7)
    })

    t.test('has no next page when the last page is exactly full', async (t) => {
      const userId = unique('u')
      for (let i = 0; i < 4; i++) await create(app, { userId })
      const first = (await list(app, userId, '?limit=2')).json()
      const second = (await list(app, userId, `?limit=2&cursor=${first.nextCursor}`)).json()
      t.equal(second.items.length, 2)
      t.equal(second.nextCursor, null)
    })

    t.test('keeps a cursor stable while conversations are created and deleted', async (t) => {
      const userId = unique('u')
      for (let i = 0; i < 6; i++) await create(app, { userId })
      const newestFirst: string[] = (await list(app, userId)).json().items.map((c: Json) => c.id)
      const first = (await list(app, userId, '?limit=2')).json()
      t.same(first.items.map((c: Json) => c.id), newestFirst.slice(0, 2))
      // A new conversation sorts before the cursor; a deleted one was after it.
      await create(app, { userId })
      await app.inject({ method: 'DELETE', url: `/v1/conversations/${newestFirst[2] as string}` })
      const second = (await list(app, userId, `?limit=2&cursor=${first.nextCursor}`)).json()
      t.same(second.items.map((c: Json) => c.id), newestFirst.slice(3, 5), 'the page is full, with no repeats')
      const third = (await list(app, userId, `?limit=2&cursor=${second.nextCursor}`)).json()
      t.same(third.items.map((c: Json) => c.id), newestFirst.slice(5))
      t.equal(third.nextCursor, null)
    })

    t.test('the summary view omits messages and adds messageCount', async (t) => {
      const userId = unique('u')
      await create(app, { userId, messages: [{ role: 'user' }, { role: 'assistant' }] })
      const [item] = (await list(app, userId, '?view=summary')).json().items
      t.notOk('messages' in item)
      t.equal(item.messageCount, 2)
    })

    t.test('filters by tenantId and still fills pages', async (t) => {
      const userId = unique('u')
      const wanted: string[] = []
      for (let i = 0; i < 6; i++) {
        const tenantId = i % 2 === 0 ? 'blue' : 'green'
        const { id } = await create(app, { userId, tenantId })
        if (tenantId === 'blue') wanted.push(id)
      }
      const first = (await list(app, userId, '?tenantId=blue&limit=2')).json()
      t.equal(first.items.length, 2)
      t.ok(first.items.every((c: Json) => c.tenantId === 'blue'))
      const second = (await list(app, userId, `?tenantId=blue&limit=2&cursor=${first.nextCursor}`)).json()
      const everything: Json[] = (await list(app, userId)).json().items
      const blueInOrder = everything.filter((c) => c.tenantId === 'blue').map((c) => c.id)
      t.same(blueInOrder.slice().sort(), [...wanted].sort())
      t.same([...first.items, ...second.items].map((c: Json) => c.id), blueInOrder)
      t.equal(second.nextCursor, null)
    })

    t.test('an unknown user has an empty list', async (t) => {
      t.same((await list(app, unique('nobody'))).json(), { items: [], nextCursor: null })
    })

    for (const query of ['?limit=0', '?limit=201', '?limit=abc', '?limit=1.5', '?view=compact', '?cursor=not-a-cursor', '?cursor=bnVsbA', '?sort=asc']) {
      t.test(`answers 400 for ${query}`, async (t) => {
        assertError(t, await list(app, 'u1', query), 400, 'FST_ERR_VALIDATION')
      })
    }

    t.test('limit defaults to 50 and accepts 200', async (t) => {
      const userId = unique('u')
      await Promise.all(Array.from({ length: 55 }, () => create(app, { userId })))
      const page = (await list(app, userId)).json()
      t.equal(page.items.length, 50)
      t.type(page.nextCursor, 'string')
      t.equal((await list(app, userId, '?limit=200')).json().items.length, 55)
    })
  })

  t.test(`[${backend.name}] delete a user's conversations`, async (t) => {
    const app = await build(t)

    t.test('deletes them all with their workflow state and counts them', async (t) => {
      const userId = unique('u')
      const ids: string[] = []
      for (let i = 0; i < 3; i++) ids.push((await create(app, { userId })).id)
      const other = await create(app, { userId: unique('other') })
      await app.inject({ method: 'PUT', url: `/v1/conversations/${ids[0] as string}/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
      const response = await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations` })
      t.equal(response.statusCode, 200)
      t.same(response.json(), { deleted: 3 })
      t.same((await list(app, userId)).json().items, [])
      for (const id of ids) t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode, 404)
      // Recreating the id must not bring the old workflow state back.
      await create(app, { id: ids[0], userId })
      const state = await app.inject({ method: 'GET', url: `/v1/conversations/${ids[0] as string}/workflow-state` })
      assertError(t, state, 404, 'WORKFLOW_STATE_NOT_FOUND')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${other.id as string}` })).statusCode, 200)
      t.same((await app.inject({ method: 'DELETE', url: `/v1/users/${unique('nobody')}/conversations` })).json(), { deleted: 0 })
    })
  })

  t.test(`[${backend.name}] workflow state`, async (t) => {
    const app = await build(t)
    const url = (id: string): string => `/v1/conversations/${id}/workflow-state`
    const state = { step: 'collect', turnCount: 1, status: 'active', collectedData: { a: 1 }, progress: 0.5, suggestedInputType: 'choice', choices: ['x', 'y'] }

    t.test('PUT creates with 201, replaces with 200; GET and DELETE follow', async (t) => {
      const conversation = await create(app, { userId: 'u1' })
      const created = await app.inject({ method: 'PUT', url: url(conversation.id), payload: state })
      t.equal(created.statusCode, 201)
      t.match(created.headers.etag, STRONG_TAG)
      t.match(created.json(), { ...state, conversationId: conversation.id, version: 1 })
      const replaced = await app.inject({ method: 'PUT', url: url(conversation.id), payload: { step: 'done', turnCount: 2, status: 'completed', progress: null } })
      t.equal(replaced.statusCode, 200)
      t.match(replaced.headers.etag, STRONG_TAG)
      t.not(replaced.headers.etag, created.headers.etag)
      t.notOk('collectedData' in replaced.json())
      const read = await app.inject({ method: 'GET', url: url(conversation.id) })
      t.equal(read.statusCode, 200)
      t.equal(read.headers.etag, replaced.headers.etag)
      t.match(read.json(), { step: 'done', progress: null, version: 2 })
      t.equal((await app.inject({ method: 'DELETE', url: url(conversation.id) })).statusCode, 204)
      assertError(t, await app.inject({ method: 'GET', url: url(conversation.id) }), 404, 'WORKFLOW_STATE_NOT_FOUND')
      assertError(t, await app.inject({ method: 'DELETE', url: url(conversation.id) }), 404, 'WORKFLOW_STATE_NOT_FOUND')
    })

    t.test('GET answers 304 when If-None-Match names the current version', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const { etag } = (await app.inject({ method: 'PUT', url: url(id), payload: state })).headers
      const notModified = await app.inject({ method: 'GET', url: url(id), headers: { 'if-none-match': etag as string } })
      t.equal(notModified.statusCode, 304)
      t.equal(notModified.headers.etag, etag)
      t.equal((await app.inject({ method: 'GET', url: url(id), headers: { 'if-none-match': '"1"' } })).statusCode, 200)
    })

    t.test('does not change the conversation', async (t) => {
      const conversation = await create(app, { userId: 'u1' })
      await sleep(5)
      await app.inject({ method: 'PUT', url: url(conversation.id), payload: state })
      await app.inject({ method: 'DELETE', url: url(conversation.id) })
      t.same((await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id as string}` })).json(), conversation)
    })

    t.test('answers CONVERSATION_NOT_FOUND when the conversation is missing', async (t) => {
      const id = unique('missing')
      assertError(t, await app.inject({ method: 'GET', url: url(id) }), 404, 'CONVERSATION_NOT_FOUND')
      assertError(t, await app.inject({ method: 'PUT', url: url(id), payload: state }), 404, 'CONVERSATION_NOT_FOUND')
      assertError(t, await app.inject({ method: 'DELETE', url: url(id) }), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('honours If-Match and If-None-Match: *', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      assertError(t, await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-match': '*' } }), 412, 'PRECONDITION_FAILED')
      const first = await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-none-match': '*' } })
      t.equal(first.statusCode, 201)
      assertError(t, await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-none-match': '*' } }), 412, 'PRECONDITION_FAILED')
      assertError(t, await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED')
      const second = await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-match': first.headers.etag as string } })
      t.equal(second.statusCode, 200)
      assertError(t, await app.inject({ method: 'DELETE', url: url(id), headers: { 'if-match': first.headers.etag as string } }), 412, 'PRECONDITION_FAILED')
      t.equal((await app.inject({ method: 'DELETE', url: url(id), headers: { 'if-match': second.headers.etag as string } })).statusCode, 204)
    })

    t.test('an ETag from before a delete never matches the state created after it', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const old = await app.inject({ method: 'PUT', url: url(id), payload: state })
      await app.inject({ method: 'DELETE', url: url(id) })
      const again = await app.inject({ method: 'PUT', url: url(id), payload: state })
      t.equal(again.json().version, 1, 'versions start again at 1')
      t.not(again.headers.etag, old.headers.etag)
      const oldTag = old.headers.etag as string
      t.equal((await app.inject({ method: 'GET', url: url(id), headers: { 'if-none-match': oldTag } })).statusCode, 200)
      assertError(t, await app.inject({ method: 'PUT', url: url(id), payload: state, headers: { 'if-match': oldTag } }), 412, 'PRECONDITION_FAILED')
      assertError(t, await app.inject({ method: 'DELETE', url: url(id), headers: { 'if-match': oldTag } }), 412, 'PRECONDITION_FAILED')
    })

    t.test('is deleted with its conversation and not revived by re-creation', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      await app.inject({ method: 'PUT', url: url(id), payload: state })
      await app.inject({ method: 'DELETE', url: `/v1/conversations/${id as string}` })
      await create(app, { id, userId: 'u1' })
      assertError(t, await app.inject({ method: 'GET', url: url(id) }), 404, 'WORKFLOW_STATE_NOT_FOUND')
      const viaPut = unique('c')
      await app.inject({ method: 'PUT', url: `/v1/conversations/${viaPut}`, payload: { userId: 'u1' } })
      await app.inject({ method: 'PUT', url: url(viaPut), payload: state })
      t.equal((await app.inject({ method: 'PUT', url: `/v1/conversations/${viaPut}`, payload: { userId: 'u1' } })).statusCode, 200)
      t.equal((await app.inject({ method: 'GET', url: url(viaPut) })).statusCode, 200, 'a replacement keeps the state')
    })

    for (const [name, payload] of [
      ['a progress above 1', { ...state, progress: 1.5 }],
      ['a negative turnCount', { ...state, turnCount: -1 }],
      ['an unknown status', { ...state, status: 'paused' }],
      ['an unknown field', { ...state, colour: 'red' }],
      ['a missing step', { turnCount: 0, status: 'active' }]
    ] as const) {
      t.test(`answers 400 for ${name}`, async (t) => {
        const { id } = await create(app, { userId: 'u1' })
        assertError(t, await app.inject({ method: 'PUT', url: url(id), payload }), 400, 'FST_ERR_VALIDATION')
        assertError(t, await app.inject({ method: 'GET', url: url(id) }), 404, 'WORKFLOW_STATE_NOT_FOUND')
      })
    }
  })

  t.test(`[${backend.name}] expiry`, async (t) => {
    const app = await build(t, { REDIS_TTL: '1' })

    t.test('a conversation is gone everywhere after expiresAt; reads do not extend it', async (t) => {
      const userId = unique('u')
      const expiring = await create(app, { userId })
      await app.inject({ method: 'PUT', url: `/v1/conversations/${expiring.id as string}/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
      t.equal(Date.parse(expiring.expiresAt) - Date.parse(expiring.updatedAt), 1000)
      await sleep(600)
      const kept = await create(app, { userId })
      // Reads in between must not extend the first one.
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${expiring.id as string}` })).statusCode, 200)
      t.equal((await list(app, userId)).json().items.length, 2)
      await sleep(550)
      assertError(t, await app.inject({ method: 'GET', url: `/v1/conversations/${expiring.id as string}` }), 404, 'CONVERSATION_NOT_FOUND')
      assertError(t, await app.inject({ method: 'GET', url: `/v1/conversations/${expiring.id as string}/workflow-state` }), 404, 'CONVERSATION_NOT_FOUND')
      assertError(t, await append(app, expiring.id, [{ role: 'user' }]), 404, 'CONVERSATION_NOT_FOUND')
      t.same((await list(app, userId)).json().items.map((c: Json) => c.id), [kept.id])
      t.same((await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations` })).json(), { deleted: 1 }, 'expired ones are not counted')
      // The id is free again, with no state left over.
      await create(app, { id: expiring.id, userId })
      assertError(t, await app.inject({ method: 'GET', url: `/v1/conversations/${expiring.id as string}/workflow-state` }), 404, 'WORKFLOW_STATE_NOT_FOUND')
    })

    t.test('a write refreshes the TTL of the conversation and its workflow state', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      await app.inject({ method: 'PUT', url: `/v1/conversations/${id as string}/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
      await sleep(600)
      const appended = await append(app, id, [{ role: 'user' }])
      t.equal(appended.statusCode, 201)
      await sleep(600)
      const conversation = await app.inject({ method: 'GET', url: `/v1/conversations/${id as string}` })
      t.equal(conversation.statusCode, 200, 'alive 1.2 s after creation thanks to the append')
      const state = await app.inject({ method: 'GET', url: `/v1/conversations/${id as string}/workflow-state` })
      t.equal(state.statusCode, 200)
      t.equal(state.json().expiresAt, conversation.json().expiresAt)
    })

    t.test('expired conversations never shorten a page', async (t) => {
      const userId = unique('u')
      for (let i = 0; i < 3; i++) await create(app, { userId })
      await sleep(600)
      const live = []
      for (let i = 0; i < 3; i++) live.push((await create(app, { userId })).id)
      await sleep(500)
      // The three older ones have expired; the newer ones sort first anyway, so page past them.
      const first = (await list(app, userId, '?limit=2')).json()
      t.equal(first.items.length, 2)
      const second = (await list(app, userId, `?limit=2&cursor=${first.nextCursor}`)).json()
      t.equal(second.items.length, 1)
      t.equal(second.nextCursor, null)
    })
  })

  t.test(`[${backend.name}] concurrency`, async (t) => {
    const app = await build(t)

    t.test('100 parallel appends leave 100 messages', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => append(app, id, [{ id: `m${i}`, role: 'user' }])))
      t.ok(responses.every((r) => r.statusCode === 201))
      const stored = (await app.inject({ method: 'GET', url: `/v1/conversations/${id as string}` })).json()
      t.equal(stored.messages.length, 100)
      t.equal(new Set(stored.messages.map((m: Json) => m.id)).size, 100)
      t.equal(stored.version, 101)
      t.same(new Set(responses.map((r) => r.json().version)).size, 100, 'every append saw its own version')
    })

    t.test('parallel retries of one append add it once', async (t) => {
      const { id } = await create(app, { userId: 'u1' })
      const responses = await Promise.all(Array.from({ length: 20 }, () => append(app, id, [{ id: 'same', role: 'user' }])))
      t.equal(responses.filter((r) => r.statusCode === 201).length, 1)
      t.equal(responses.filter((r) => r.statusCode === 200).length, 19)
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${id as string}` })).json().messages.length, 1)
    })

    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      t.test(`of 20 parallel ${method}s with the same If-Match, exactly one wins`, async (t) => {
        const { id, etag } = await createTagged(app, { userId: 'u1' })
        const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => app.inject({
          method,
          url: `/v1/conversations/${id as string}`,
          headers: { 'if-match': etag },
          ...(method === 'DELETE' ? {} : { payload: method === 'PUT' ? { userId: 'u1', title: `t${i}` } : { title: `t${i}` } })
        })))
        t.equal(responses.filter((r) => r.statusCode < 300).length, 1)
        t.ok(responses.every((r) => r.statusCode < 300 || r.statusCode === 412 || (method === 'DELETE' && r.statusCode === 404)))
      })
    }

    t.test('of 20 parallel If-Match appends, exactly one wins', async (t) => {
      const { id, etag } = await createTagged(app, { userId: 'u1' })
      const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => append(app, id, [{ id: `m${i}`, role: 'user' }], { 'if-match': etag })))
      t.equal(responses.filter((r) => r.statusCode === 201).length, 1)
      t.equal(responses.filter((r) => r.statusCode === 412).length, 19)
    })

    t.test('of 20 parallel creates of one id, exactly one wins', async (t) => {
      const id = unique('c')
      const responses = await Promise.all(Array.from({ length: 20 }, () =>
        app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1' } })))
      t.equal(responses.filter((r) => r.statusCode === 201).length, 1)
      t.equal(responses.filter((r) => r.statusCode === 409).length, 19)
    })
  })
}
