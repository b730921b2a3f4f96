import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'

// The chat turn as one request (CONTRACT-NOTES §16): an append with ?window=N or
// ?lastMessages=N also answers the context after it, computed in the same atomic step, as a
// read of that version would answer it. Run once per backend from the shared API suite.

type Json = Record<string, any>

let sequence = 0
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

async function chat (app: FastifyInstance, count: number): Promise<string> {
  const id = `turn-${process.pid}-${++sequence}-${Date.now().toString(36)}`
  const messages = Array.from({ length: count }, (_, i) => ({ id: `m${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `message number ${i}` }))
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'turn-user', messages } })
  if (created.statusCode !== 201) throw new Error(`create failed: ${created.statusCode} ${created.body}`)
  return id
}

const append = async (app: FastifyInstance, id: string, query: string, messages: Json[], headers: Json = {}): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: url(id, `/messages${query}`), payload: { messages }, headers })

export function chatTurnSuite (backend: Backend): void {
  t.test(`[${backend.name}] an append answers its context window`, async (t) => {
    const app = await backend.build(t)

    t.test('?window=N answers what a read with maxTokens=N answers at the version the append made', async (t) => {
      const id = await chat(app, 12)
      const response = await append(app, id, '?window=40', [{ id: 'u1', role: 'user', text: 'and what about the weather?' }])
      t.equal(response.statusCode, 201)
      const result = response.json()
      t.match(result, { appended: 1, skipped: 0, version: 2, messageCount: 13 })
      const read = (await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=40') })).json()
      t.same(result.window, { items: read.items, totalTokens: read.totalTokens, messageCount: 13 }, 'the same items, tokens and counts')
      t.equal(result.window.items[0].id, 'u1', 'the new message is the newest of the window')
      t.ok(result.window.items.length > 1 && result.window.items.length < 13, `${result.window.items.length} messages fit in 40 tokens`)
      t.ok(result.window.totalTokens <= 40)
    })

    t.test('?lastMessages=N answers the newest N, oldest first, as a read with lastMessages=N', async (t) => {
      const id = await chat(app, 6)
      const result = (await append(app, id, '?lastMessages=3', [{ id: 'u1', role: 'user', text: 'hello' }])).json()
      const read = (await app.inject({ method: 'GET', url: url(id, '?lastMessages=3') })).json()
      t.same(result.window.items.map(({ tokens, ...message }: Json) => message), read.messages, 'the same messages')
      t.same(result.window.items.map((message: Json) => message.id), ['m4', 'm5', 'u1'])
      t.ok(result.window.items.every((message: Json) => Number.isInteger(message.tokens) && message.tokens > 0), 'with their token counts')
      t.equal(result.window.totalTokens, result.window.items.reduce((sum: number, message: Json) => sum + (message.tokens as number), 0))
      t.same((await append(app, id, '?lastMessages=0', [{ id: 'u2', role: 'user' }])).json().window, { items: [], totalTokens: 0, messageCount: 8 })
    })

    t.test('an append of duplicates only still answers the window, at the version it left unchanged', async (t) => {
      const id = await chat(app, 4)
      const response = await append(app, id, '?window=1000', [{ id: 'm3', role: 'assistant', text: 'message number 3' }])
      t.equal(response.statusCode, 200)
      t.match(response.json(), { appended: 0, skipped: 1, version: 1 })
      t.same(response.json().window.items.map((message: Json) => message.id), ['m3', 'm2', 'm1', 'm0'])
    })

    t.test('each of many concurrent appends answers the window of its own write', async (t) => {
      const id = await chat(app, 2)
      const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
        (await append(app, id, '?lastMessages=2', [{ id: `c${i}`, role: 'user', text: `concurrent ${i}` }])).json()))
      const versions = answers.map((answer) => answer.version).sort((a, b) => a - b)
      t.same(versions, Array.from({ length: 20 }, (_, i) => i + 2), 'one version each, none lost')
      for (const [i, answer] of answers.entries()) {
        t.equal(answer.window.items.at(-1).id, `c${i}`, `append ${i} sees its own message as the newest`)
        t.equal(answer.window.messageCount, answer.messageCount, 'and the count of its own version')
      }
    })

    t.test('a window append obeys If-Match and refuses bad queries with 400', async (t) => {
      const id = await chat(app, 2)
      const stale = await append(app, id, '?window=10', [{ id: 'u1', role: 'user' }], { 'if-match': '"nope.1"' })
      t.equal(stale.statusCode, 412)
      for (const query of ['?window=0', '?window=', '?window=1&lastMessages=1', '?lastMessages=1001', '?window=0x10']) {
        const response = await append(app, id, query, [{ id: 'u2', role: 'user' }])
        t.equal(response.statusCode, 400, `${query}: 400`)
        t.equal(response.json().code, 'FST_ERR_VALIDATION')
      }
      const read = (await app.inject({ method: 'GET', url: url(id) })).json()
      t.equal(read.version, 1, 'none of them wrote')
    })
  })
}
