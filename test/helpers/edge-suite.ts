import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { MAX_JSON_DEPTH } from '../../src/schemas.js'
import type { Backend } from './backends.js'

// The edges of the contract, run once per backend from the shared API suite: every id the
// schemas accept works in every route, and free-form JSON is bounded before it is stored.

type Json = Record<string, any>
type Send = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
Promise<{ status: number, body: any, headers: Record<string, string | undefined> }>

const ID_CHARS = [...'ABCXYZabcxyz0189._:-']
// Everything a user id may hold: percent signs, slashes, query and fragment marks, dots,
// quotes, non-Latin letters, astral characters and combining marks.
const PRINCIPAL_CHARS = [...'aZ09._:-%/?#&=+;,@!$\'"()*[]<>\\^`|~', 'é', 'ß', 'Ω', 'ж', '中', '😀', '\u0301']
const LONE_SURROGATE = /\p{Cs}/u

/** The first `units` UTF-16 code units, never ending in half of an astral character. */
const truncate = (value: string, units: number): string => value.slice(0, units).replace(/[\ud800-\udbff]$/, '')

const fixedLength = (chars: string[], length: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...chars), { minLength: length, maxLength: length }).map((list) => list.join(''))

/** Ids at the schema's edges: the longest legal value, or a short one, from every allowed character. */
const conversationId = fc.oneof(fixedLength(ID_CHARS, 128), fixedLength(ID_CHARS, 3), fc.constantFrom('...', '-', ':'))
  .filter((id) => id !== '.' && id !== '..')
// Length is counted in UTF-16 code units, as the schema counts it; astral characters take two.
const principal = fc.oneof(
  fc.array(fc.constantFrom(...PRINCIPAL_CHARS), { minLength: 1, maxLength: 128 }).map((list) => list.join('')),
  fixedLength(['u', 'é', '%', '/'], 256)
).map((value) => truncate(value, 256)).filter((value) => value !== '' && value !== '.' && value !== '..' && !LONE_SURROGATE.test(value))

function injector (app: FastifyInstance): Send {
  return async (method, path, body, headers = {}) => {
    const response = await app.inject({ method: method as 'GET', url: path, headers, ...(body === undefined ? {} : { payload: body as Json }) })
    return { status: response.statusCode, body: response.body === '' ? undefined : response.json(), headers: response.headers as Record<string, string> }
  }
}

function socket (base: string): Send {
  return async (method, path, body, headers = {}) => {
    const response = await fetch(base + path, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text), headers: Object.fromEntries(response.headers) }
  }
}

/** One conversation through every route that names its ids, asserting each answer. */
async function everyRoute (t: Test, send: Send, ids: { id: string, messageId: string, userId: string, tenantId: string }): Promise<void> {
  const { id, messageId, userId, tenantId } = ids
  const path = `/v1/conversations/${encodeURIComponent(id)}`
  const userPath = `/v1/users/${encodeURIComponent(userId)}/conversations`
  const expect = (label: string, status: number, answer: { status: number, body: any }): void => {
    if (answer.status !== status) t.fail(`${label}: ${answer.status} ${JSON.stringify(answer.body)}`, { ids })
  }

  const created = await send('POST', '/v1/conversations', { id, userId, tenantId, messages: [{ id: messageId, role: 'user', text: 'hi' }] })
  expect('create', 201, created)
  t.equal(created.headers.location, path, 'Location names the id, percent-encoded')
  expect('read', 200, await send('GET', path))
  const replaced = await send('PUT', path, { id, userId, tenantId, title: 'replaced', messages: [{ id: messageId, role: 'user' }] }, { 'if-match': created.headers.etag ?? '' })
  expect('replace', 200, replaced)
  expect('patch', 200, await send('PATCH', path, { title: 'patched' }, { 'if-match': replaced.headers.etag ?? '' }))
  const secondId = messageId.length < 128 ? `${messageId}0` : messageId.slice(0, 127) + (messageId.endsWith('0') ? '1' : '0')
  const appended = await send('POST', `${path}/messages`, { messages: [{ id: messageId, role: 'user' }, { id: secondId, role: 'assistant' }] })
  expect('append', 201, appended)
  t.equal(appended.body?.skipped, 1, 'the message id is recognised as already stored')
  expect('workflow PUT', 201, await send('PUT', `${path}/workflow-state`, { step: 's', turnCount: 1, status: 'active' }))
  expect('workflow GET', 200, await send('GET', `${path}/workflow-state`))
  expect('workflow DELETE', 204, await send('DELETE', `${path}/workflow-state`))

  const other = await send('POST', '/v1/conversations', { userId, tenantId })
  expect('second create', 201, other)
  const first = await send('GET', `${userPath}?limit=1&tenantId=${encodeURIComponent(tenantId)}`)
  expect('list', 200, first)
  const second = await send('GET', `${userPath}?limit=1&tenantId=${encodeURIComponent(tenantId)}&cursor=${encodeURIComponent(first.body?.nextCursor ?? '')}`)
  expect('list page 2', 200, second)
  const listed = [...first.body?.items ?? [], ...second.body?.items ?? []].map((item: Json) => item.id).sort()
  t.same(listed, [id, other.body?.id].sort(), 'both conversations are listed, one per page')
  t.equal(first.body?.items[0]?.userId, userId, 'the user id comes back as it was sent')

  expect('delete', 204, await send('DELETE', path, undefined, { 'if-match': '*' }))
  expect('read after delete', 404, await send('GET', path))
  const deleted = await send('DELETE', userPath)
  expect('delete user', 200, deleted)
  t.equal(deleted.body?.deleted, 1, "the user's other conversation went in the same call")
}

/** The JSON text of an object nested `depth` levels: {"a":{"a":…{}}}. Built as text, since
 * JSON.stringify itself overflows the stack on a few thousand levels. */
function nested (depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1)
}

const VALUE = '@value@'

export function edgeSuite (backend: Backend): void {
  const { build } = backend

  t.test(`[${backend.name}] every legal id works in every route`, async (t) => {
    const app = await build(t)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const ids = fc.record({ id: conversationId, messageId: conversationId, userId: principal, tenantId: principal })
    let runs = 0
    for (const [transport, send] of [['inject', injector(app)], ['HTTP socket', socket(base)]] as const) {
      await fc.assert(fc.asyncProperty(ids, async (generated) => {
        runs++
        // Each run gets ids of its own, so that runs on a shared Redis never meet.
        const suffix = `${runs}`
        const sample = {
          id: generated.id.slice(0, 128 - suffix.length) + suffix,
          messageId: generated.messageId,
          userId: truncate(generated.userId, 256 - suffix.length - 1) + '~' + suffix,
          tenantId: generated.tenantId
        }
        await everyRoute(t, send, sample)
      }), { numRuns: 8 })
      t.pass(`${transport}: 8 generated sets of ids passed through every route`)
    }
  })

  t.test(`[${backend.name}] ids that a URL cannot carry are refused where they are written`, async (t) => {
    const app = await build(t)
    for (const bad of ['.', '..']) {
      const conversation = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: bad, userId: 'u1' } })
      t.equal(conversation.statusCode, 400, `conversation id ${bad}`)
      const user = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: bad } })
      t.equal(user.statusCode, 400, `user id ${bad}`)
    }
    const surrogate = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'u\ud800' } })
    t.equal(surrogate.statusCode, 400, 'a user id with a lone surrogate')
    t.equal(surrogate.json().code, 'FST_ERR_VALIDATION')
  })

  t.test(`[${backend.name}] free-form JSON nests at most ${MAX_JSON_DEPTH} levels, on every route that takes it`, async (t) => {
    const app = await build(t)
    const deep = nested(MAX_JSON_DEPTH + 1)
    const deepest = nested(MAX_JSON_DEPTH)
    const writes: Array<[string, (id: string, value: string) => { method: 'POST' | 'PUT' | 'PATCH', url: string, payload: Json }]> = [
      ['create metadata', (id, value) => ({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', metadata: value } })],
      ['create stepData', (id, value) => ({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', stepData: value } })],
      ['create cardJson', (id, value) => ({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages: [{ role: 'assistant', kind: 'adaptiveCard', cardJson: value }] } })],
      ['create message metadata', (id, value) => ({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages: [{ role: 'user', metadata: value }] } })],
      ['replace metadata', (id, value) => ({ method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId: 'u1', metadata: value } })],
      ['patch stepData', (id, value) => ({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { stepData: value } })],
      ['patch metadata', (id, value) => ({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { metadata: value } })],
      ['append cardJson', (id, value) => ({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ role: 'assistant', cardJson: value }] } })],
      ['append metadata', (id, value) => ({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ role: 'user', metadata: value }] } })],
      ['workflow collectedData', (id, value) => ({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active', collectedData: value } })]
    ]
    let counter = 0
    for (const [name, write] of writes) {
      t.test(name, async (t) => {
        const id = `depth-${process.pid}-${++counter}-${Date.now()}`
        const request = (value: string) => {
          const { payload, ...rest } = write(id, VALUE)
          return { ...rest, payload: JSON.stringify(payload).replace(`"${VALUE}"`, value), headers: { 'content-type': 'application/json' } }
        }
        if (write(id, VALUE).url !== '/v1/conversations') {
          t.equal((await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1' } })).statusCode, 201)
        }
        const before = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
        // 1e400 is Infinity to JSON.parse, and JSON would store it as null.
        for (const [what, value] of [['too deep', deep], ['5000 levels', nested(5000)], ['a non-finite number', '{"n":1e400}']]) {
          const rejected = await app.inject(request(value as string))
          t.equal(rejected.statusCode, 400, `${name}: ${what as string} is 400`)
          t.equal(rejected.json().code, 'FST_ERR_VALIDATION')
        }
        const after = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
        t.same([after.statusCode, after.body, after.headers.etag], [before.statusCode, before.body, before.headers.etag], 'nothing was stored')
        const accepted = await app.inject(request(deepest))
        t.ok(accepted.statusCode < 300, `${name}: ${MAX_JSON_DEPTH} levels are accepted (${accepted.statusCode})`)
        const read = await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
        t.equal(read.statusCode, 200, 'and read back')
        const listed = await app.inject({ method: 'GET', url: '/v1/users/u1/conversations?limit=200' })
        t.equal(listed.statusCode, 200, 'and listed')
      })
    }
  })
}
