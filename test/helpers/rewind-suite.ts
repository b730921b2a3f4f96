import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'

// Rewind: DELETE …/messages?after=<messageId> deletes every message after that one in one
// write (version +1, If-Match, the index entry moves), and the deleted ids stay used. With
// an append after it, that is edit-and-resend. Run once per backend.

type Json = Record<string, any>

let sequence = 0
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

async function chat (app: FastifyInstance, count: number, userId = 'rewinder'): Promise<{ id: string, etag: string }> {
  const id = `rewind-${process.pid}-${++sequence}-${Date.now().toString(36)}`
  const messages = Array.from({ length: count }, (_, i) => ({ id: `m${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `message ${i}` }))
  // Bodies stay under the body limit: at most 500 messages a request.
  const first = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId, messages: messages.slice(0, 500) } })
  let etag = first.headers.etag as string
  for (let from = 500; from < count; from += 100) {
    etag = (await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: messages.slice(from, from + 100) } })).headers.etag as string
  }
  return { id, etag }
}

const idsOf = async (app: FastifyInstance, id: string): Promise<string[]> =>
  (await app.inject({ method: 'GET', url: url(id) })).json().messages.map((message: Json) => message.id)

export function rewindSuite (backend: Backend): void {
  t.test(`[${backend.name}] rewind`, async (t) => {
    const app = await backend.build(t)

    t.test('deletes every message after one in one write, and the deleted ids stay used', async (t) => {
      const { id, etag } = await chat(app, 6)
      const response = await app.inject({ method: 'DELETE', url: url(id, '/messages?after=m2'), headers: { 'if-match': etag } })
      t.equal(response.statusCode, 200)
      t.same(response.json(), { deleted: 3, messageCount: 3, version: 2 })
      t.not(response.headers.etag, etag, 'a new ETag')
      t.same(await idsOf(app, id), ['m0', 'm1', 'm2'])
      const retried = (await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm3', role: 'assistant', text: 'again' }] } })).json()
      t.match(retried, { appended: 0, skipped: 1, version: 2 }, 'a deleted id is skipped')
      const resent = await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm3b', role: 'assistant', text: 'a new answer' }] } })
      t.equal(resent.statusCode, 201, 'edit-and-resend: a new id appends')
      t.same(await idsOf(app, id), ['m0', 'm1', 'm2', 'm3b'])
      const page = (await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&limit=2') })).json()
      t.same(page.items.map((message: Json) => message.id), ['m3b', 'm2'], 'pages agree')
    })

    t.test('after the newest message, nothing changes', async (t) => {
      const { id } = await chat(app, 3)
      const response = await app.inject({ method: 'DELETE', url: url(id, '/messages?after=m2') })
      t.equal(response.statusCode, 200)
      t.same(response.json(), { deleted: 0, messageCount: 3, version: 1 })
    })

    t.test('rewinding to the first of 1,200 messages deletes 1,199', async (t) => {
      const { id } = await chat(app, 1200)
      const response = await app.inject({ method: 'DELETE', url: url(id, '/messages?after=m0') })
      t.same(response.json(), { deleted: 1199, messageCount: 1, version: 9 }, 'one write after the create and its seven appends')
      t.same(await idsOf(app, id), ['m0'])
    })

    t.test('moves the conversation to the top of its user\'s list', async (t) => {
      const userId = `rewind-list-${process.pid}-${++sequence}`
      const older = await chat(app, 3, userId)
      await new Promise((resolve) => setTimeout(resolve, 5))
      const newer = await chat(app, 3, userId)
      await new Promise((resolve) => setTimeout(resolve, 5))
      await app.inject({ method: 'DELETE', url: url(older.id, '/messages?after=m0') })
      const listed = (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?view=summary` })).json()
      t.same(listed.items.map((item: Json) => item.id), [older.id, newer.id])
    })

    t.test('a missing message or conversation is 404, a stale If-Match 412, no `after` 400; none changes anything', async (t) => {
      const { id } = await chat(app, 3)
      const attempts: Array<[string, Json, number, string]> = [
        ['/messages?after=nope', {}, 404, 'MESSAGE_NOT_FOUND'],
        ['/messages?after=m0', { 'if-match': '"stale.1"' }, 412, 'PRECONDITION_FAILED'],
        ['/messages', {}, 400, 'FST_ERR_VALIDATION'],
        ['/messages?after=a/b', {}, 400, 'FST_ERR_VALIDATION']
      ]
      for (const [rest, headers, statusCode, code] of attempts) {
        const response = await app.inject({ method: 'DELETE', url: url(id, rest), headers })
        t.equal(response.statusCode, statusCode, `${rest}: ${statusCode}`)
        t.equal(response.json().code, code)
      }
      t.same(await idsOf(app, id), ['m0', 'm1', 'm2'])
      t.equal((await app.inject({ method: 'GET', url: url(id) })).json().version, 1)
      const missing = await app.inject({ method: 'DELETE', url: url(`missing-${process.pid}`, '/messages?after=m0') })
      t.equal(missing.json().code, 'CONVERSATION_NOT_FOUND')
    })
  })
}
