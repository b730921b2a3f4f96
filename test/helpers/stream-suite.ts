import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'
import { countTokens } from './tokens.js'

// Streamed messages (issue 20): an append with status in_progress starts one, numbered
// deltas grow its text, and a PATCH of its status finishes or stops it; a stream without a
// delta for STREAM_IDLE_TIMEOUT_SECONDS times out. Every delta, finish and cancel is a write
// (CONTRACT-NOTES §14). Run once per backend.

type Json = Record<string, any>

let sequence = 0
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

/** A conversation with one finished message and one in_progress message `s`, started with `text`. */
async function started (app: FastifyInstance, text?: string): Promise<{ id: string, etag: string }> {
  const id = `stream-${process.pid}-${++sequence}-${Date.now().toString(36)}`
  await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'streamer', messages: [{ id: 'q', role: 'user', text: 'hi' }] } })
  const start = await app.inject({
    method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 's', role: 'assistant', status: 'in_progress', ...(text === undefined ? {} : { text }) }] }
  })
  if (start.statusCode !== 201) throw new Error(`start failed: ${start.statusCode} ${start.body}`)
  return { id, etag: start.headers.etag as string }
}

const delta = async (app: FastifyInstance, id: string, seq: number, text: string, headers: Json = {}): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: url(id, '/messages/s/deltas'), payload: { seq, text }, headers })

const message = async (app: FastifyInstance, id: string, messageId = 's'): Promise<Json> =>
  (await app.inject({ method: 'GET', url: url(id, `/messages/${messageId}`) })).json()

const conversation = async (app: FastifyInstance, id: string): Promise<Json> => (await app.inject({ method: 'GET', url: url(id) })).json()

const finish = async (app: FastifyInstance, id: string, body: Json): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'PATCH', url: url(id, '/messages/s'), payload: body })

export function streamSuite (backend: Backend): void {
  t.test(`[${backend.name}] streamed messages`, async (t) => {
    const app = await backend.build(t, { MAX_DELTA_CHARS: '64', MAX_STREAMED_TEXT_CHARS: '100' })

    t.test('every message answer carries status; a finished one is completed', async (t) => {
      const { id } = await started(app)
      const read = await conversation(app, id)
      t.same(read.messages.map((m: Json) => m.status), ['completed', 'in_progress'])
      t.equal(read.messages[1].text, '', 'an in_progress message without text reads as empty text')
      const page = (await app.inject({ method: 'GET', url: url(id, '/messages') })).json()
      t.same(page.items.map((m: Json) => m.status), ['completed', 'in_progress'])
    })

    t.test('deltas grow the text; each is a write with a new ETag and version', async (t) => {
      const { id, etag } = await started(app, 'Once')
      const first = await delta(app, id, 1, ' upon')
      t.equal(first.statusCode, 200)
      t.same(first.json(), { messageId: 's', seq: 1, textLength: 9 })
      t.not(first.headers.etag, etag, 'a new ETag')
      const second = await delta(app, id, 2, ' a time', { 'if-match': first.headers.etag })
      t.same(second.json(), { messageId: 's', seq: 2, textLength: 16 })
      const read = await conversation(app, id)
      t.equal(read.version, 4, 'create, start and two deltas')
      t.match(read.messages[1], { id: 's', status: 'in_progress', text: 'Once upon a time' })
      const window = (await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=1000') })).json()
      t.equal(window.items[0].text, 'Once upon a time', 'windows show the text acknowledged so far')
      t.equal((await app.inject({ method: 'GET', url: url(id), headers: { 'if-none-match': first.headers.etag } })).statusCode, 200,
        'an ETag never names two texts')
    })

    t.test('a seq already applied with the same text changes nothing; a gap or other text is 409 with expectedSeq', async (t) => {
      const { id } = await started(app)
      await delta(app, id, 1, 'a')
      const second = await delta(app, id, 2, 'b')
      const retried = await delta(app, id, 1, 'a')
      t.equal(retried.statusCode, 200)
      t.same(retried.json(), { messageId: 's', seq: 1, textLength: 2 })
      t.equal(retried.headers.etag, second.headers.etag, 'nothing changed')
      for (const [seq, text] of [[4, 'd'], [1, 'x'], [2, '']] as const) {
        const refused = await delta(app, id, seq, text)
        t.equal(refused.statusCode, 409, `seq ${seq} with ${JSON.stringify(text)}`)
        t.match(refused.json(), { code: 'DELTA_OUT_OF_ORDER', expectedSeq: 3 })
      }
      t.equal((await message(app, id)).text, 'ab')
      t.equal((await conversation(app, id)).version, 4)
    })

    t.test('a finish ends the stream, with the final text and exact tokens; a second finish is 409', async (t) => {
      const { id } = await started(app)
      await delta(app, id, 1, 'Hello')
      const done = await finish(app, id, { status: 'completed', text: 'Hello, world', metadata: { model: 'm' } })
      t.equal(done.statusCode, 200)
      t.match(done.json(), { id: 's', status: 'completed', text: 'Hello, world', metadata: { model: 'm' } })
      t.notOk('statusReason' in done.json())
      const window = (await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=1000') })).json()
      t.equal(window.items[0].tokens, countTokens({ text: 'Hello, world' }), 'counted exactly when it ends')
      const late = await delta(app, id, 2, '!')
      t.equal(late.statusCode, 409)
      t.match(late.json(), { code: 'MESSAGE_NOT_IN_PROGRESS', status: 'completed' })
      const again = await finish(app, id, { status: 'incomplete', statusReason: 'cancelled' })
      t.equal(again.statusCode, 409)
      t.match(again.json(), { code: 'MESSAGE_NOT_IN_PROGRESS', status: 'completed' })
      const plain = await finish(app, id, { status: 'completed' })
      t.equal(plain.statusCode, 409, 'only in_progress may change status')
      t.equal((await app.inject({ method: 'PATCH', url: url(id, '/messages/q'), payload: { status: 'completed' } })).statusCode, 409,
        'a message that never streamed is not in progress')
    })

    t.test('a cancel stops the producer: its next delta is 409 with the reason', async (t) => {
      const { id } = await started(app)
      await delta(app, id, 1, 'partial')
      const cancelled = await finish(app, id, { status: 'incomplete', statusReason: 'cancelled' })
      t.match(cancelled.json(), { status: 'incomplete', statusReason: 'cancelled', text: 'partial' })
      const next = await delta(app, id, 2, ' more')
      t.equal(next.statusCode, 409)
      t.match(next.json(), { code: 'MESSAGE_NOT_IN_PROGRESS', status: 'incomplete', statusReason: 'cancelled' })
      t.equal((await message(app, id)).text, 'partial')
    })

    t.test('status rules: a reason goes with incomplete only; streams start with an append', async (t) => {
      const { id } = await started(app)
      for (const body of [{ status: 'incomplete' }, { status: 'completed', statusReason: 'x' }, { statusReason: 'x' }, { status: 'in_progress' }]) {
        t.equal((await finish(app, id, body)).statusCode, 400, JSON.stringify(body))
      }
      const created = await app.inject({
        method: 'POST', url: '/v1/conversations', payload: { userId: 'streamer', messages: [{ role: 'assistant', status: 'in_progress' }] }
      })
      t.equal(created.statusCode, 400, 'a create holds finished messages only')
      const put = await app.inject({ method: 'PUT', url: url(id), payload: { userId: 'streamer', messages: [{ role: 'assistant', status: 'in_progress' }] } })
      t.equal(put.statusCode, 400, 'so does a replacement')
      t.equal((await message(app, id)).status, 'in_progress', 'nothing changed')
    })

    t.test('while it streams, text changes by deltas only; other fields may change', async (t) => {
      const { id } = await started(app, 'x')
      const edited = await finish(app, id, { text: 'other' })
      t.equal(edited.statusCode, 409)
      t.equal(edited.json().code, 'MESSAGE_IN_PROGRESS')
      const tagged = await finish(app, id, { metadata: { step: 1 } })
      t.equal(tagged.statusCode, 200)
      t.match(tagged.json(), { status: 'in_progress', text: 'x', metadata: { step: 1 } })
      t.same((await delta(app, id, 1, 'y')).json(), { messageId: 's', seq: 1, textLength: 2 })
      t.same((await delta(app, id, 1, 'y')).json(), { messageId: 's', seq: 1, textLength: 2 }, 'a retry still compares after the edit')
      t.equal((await message(app, id)).text, 'xy')
    })

    t.test('a delta is a write: If-Match applies; a missing message or conversation is 404', async (t) => {
      const { id, etag } = await started(app)
      await delta(app, id, 1, 'a')
      const stale = await delta(app, id, 2, 'b', { 'if-match': etag })
      t.equal(stale.statusCode, 412)
      t.equal((await app.inject({ method: 'POST', url: url(id, '/messages/nope/deltas'), payload: { seq: 1, text: 'a' } })).statusCode, 404)
      t.equal((await app.inject({ method: 'POST', url: url('no-such-stream', '/messages/s/deltas'), payload: { seq: 1, text: 'a' } })).statusCode, 404)
      t.equal((await delta(app, id, 0, 'a')).statusCode, 400, 'seq starts at 1')
      t.equal((await message(app, id)).text, 'a')
    })

    t.test('content is data: quotes, escapes and a surrogate pair split across deltas arrive whole', async (t) => {
      const { id } = await started(app)
      const pieces = ['say "hi"\\', '\n\u2028', '\ud83d', '\ude00', '"}', '<|endoftext|>']
      for (const [i, piece] of pieces.entries()) t.equal((await delta(app, id, i + 1, piece)).statusCode, 200)
      t.same((await delta(app, id, 3, '\ud83d')).json().seq, 3, 'a retry of half a pair compares equal')
      const done = await finish(app, id, { status: 'completed' })
      t.equal(done.json().text, pieces.join(''))
      t.equal((await message(app, id)).text, 'say "hi"\\\n\u2028😀"}<|endoftext|>')
    })

    t.test('past MAX_DELTA_CHARS or MAX_STREAMED_TEXT_CHARS: 413, and nothing changes', async (t) => {
      const { id } = await started(app, 'x'.repeat(40))
      const big = await delta(app, id, 1, 'y'.repeat(65))
      t.equal(big.statusCode, 413)
      t.equal(big.json().code, 'DELTA_TOO_LARGE')
      t.equal((await delta(app, id, 1, 'y'.repeat(60))).statusCode, 200)
      const over = await delta(app, id, 2, 'z')
      t.equal(over.statusCode, 413)
      t.equal(over.json().code, 'MESSAGE_TOO_LARGE')
      t.equal((await message(app, id)).text.length, 100)
      t.equal((await conversation(app, id)).version, 3)
    })

    t.test('deleting, rewinding past or replacing a streamed message ends its stream', async (t) => {
      const deleted = await started(app)
      await app.inject({ method: 'DELETE', url: url(deleted.id, '/messages/s') })
      t.equal((await delta(app, deleted.id, 1, 'a')).statusCode, 404)
      const rewound = await started(app)
      await app.inject({ method: 'DELETE', url: url(rewound.id, '/messages?after=q') })
      t.equal((await delta(app, rewound.id, 1, 'a')).statusCode, 404)
      const replaced = await started(app)
      await app.inject({ method: 'PUT', url: url(replaced.id), payload: { userId: 'streamer', messages: [{ id: 's', role: 'assistant', text: 'final' }] } })
      const late = await delta(app, replaced.id, 1, 'a')
      t.equal(late.statusCode, 409)
      t.match(late.json(), { code: 'MESSAGE_NOT_IN_PROGRESS', status: 'completed' })
    })

    t.test('a fork copies a streaming message as incomplete (forked), and the source streams on', async (t) => {
      const { id } = await started(app, 'so far')
      const fork = await app.inject({ method: 'POST', url: url(id, '/fork'), payload: {} })
      t.equal(fork.statusCode, 201)
      t.match(fork.json().messages[1], { id: 's', status: 'incomplete', statusReason: 'forked', text: 'so far' })
      t.equal((await delta(app, fork.json().id, 1, 'a')).statusCode, 409, 'the copy does not stream')
      t.equal((await delta(app, id, 1, '!')).statusCode, 200)
    })
  })

  t.test(`[${backend.name}] a stream without deltas times out`, async (t) => {
    const app = await backend.build(t, { STREAM_IDLE_TIMEOUT_SECONDS: '1' })
    const { id } = await started(app, 'started')
    await delta(app, id, 1, ', then silence')
    const version = (await conversation(app, id)).version
    let read = await message(app, id)
    for (let waited = 0; read.status === 'in_progress' && waited < 10_000; waited += 100) {
      await sleep(100)
      read = await message(app, id)
    }
    t.match(read, { status: 'incomplete', statusReason: 'timeout', text: 'started, then silence' }, 'with no request from anyone')
    t.equal((await conversation(app, id)).version, version + 1, 'a write')
    const next = await delta(app, id, 2, 'late')
    t.match(next.json(), { code: 'MESSAGE_NOT_IN_PROGRESS', status: 'incomplete', statusReason: 'timeout' })
  })
}
