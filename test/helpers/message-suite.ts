import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { Backend } from './backends.js'
import { countTokens } from './tokens.js'

// Messages as a resource, run once per backend from the shared API suite: pages by cursor,
// tail reads, context windows, one message, its edit and its deletion.

type Json = Record<string, any>

let sequence = 0
const uniqueId = (prefix: string): string => `${prefix}-${process.pid}-${++sequence}-${Date.now().toString(36)}`

const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

async function conversationWith (app: FastifyInstance, count: number, text = (i: number) => `message ${i}`): Promise<{ id: string, etag: string }> {
  const id = uniqueId('msgs')
  const messages = Array.from({ length: count }, (_, i) => ({ id: `m${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: text(i) }))
  const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages } })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.statusCode} ${response.body}`)
  return { id, etag: response.headers.etag as string }
}

const ids = (response: LightMyRequestResponse): string[] => response.json().items.map((message: Json) => message.id)

async function allPages (app: FastifyInstance, id: string, query: string, between?: (page: number) => Promise<void>): Promise<string[]> {
  const seen: string[] = []
  let cursor: string | null = null
  let page = 0
  do {
    const response: LightMyRequestResponse = await app.inject({ method: 'GET', url: url(id, `/messages?${query}${cursor === null ? '' : `&cursor=${cursor}`}`) })
    if (response.statusCode !== 200) throw new Error(`page failed: ${response.statusCode} ${response.body}`)
    seen.push(...ids(response))
    cursor = response.json().nextCursor
    await between?.(page++)
  } while (cursor !== null)
  return seen
}

function assertError (t: Test, response: LightMyRequestResponse, statusCode: number, code: string): void {
  t.equal(response.statusCode, statusCode, `status ${statusCode}`)
  t.equal(response.json().code, code, `code ${code}`)
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `m${from + i}`)

export function messageSuite (backend: Backend): void {
  t.test(`[${backend.name}] message pages`, async (t) => {
    const app = await backend.build(t)

    t.test('pages oldest first by default, and newest first with order=desc, by cursor', async (t) => {
      const { id } = await conversationWith(app, 25)
      const first = await app.inject({ method: 'GET', url: url(id, '/messages?limit=10') })
      t.equal(first.statusCode, 200)
      t.same(ids(first), range(0, 10))
      t.equal(first.json().messageCount, 25)
      t.type(first.json().nextCursor, 'string')
      t.same(await allPages(app, id, 'limit=10'), range(0, 25), 'asc: every message once, in order')
      t.same(await allPages(app, id, 'limit=7&order=desc'), range(0, 25).reverse(), 'desc: every message once, newest first')
      const exact = await app.inject({ method: 'GET', url: url(id, '/messages?limit=25') })
      t.equal(exact.json().nextCursor, null, 'no cursor on the last page')
      const byDefault = await app.inject({ method: 'GET', url: url(id, '/messages') })
      t.equal(ids(byDefault).length, 25, 'limit defaults to 100')
      t.match(byDefault.json().items[0], { id: 'm0', role: 'user', kind: 'text', text: 'message 0' })
      t.notOk('tokens' in byDefault.json().items[0], 'tokens only in context windows')
    })

    t.test('paging is stable while the conversation changes', async (t) => {
      const { id } = await conversationWith(app, 30)
      // Appends during asc paging appear on later pages; deletes just disappear.
      const asc = await allPages(app, id, 'limit=8', async (page) => {
        await Promise.all([
          app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: `new${page}`, role: 'user' }] } }),
          app.inject({ method: 'DELETE', url: url(id, `/messages/m${29 - page}`) }),
          app.inject({ method: 'PATCH', url: url(id, `/messages/m${page}`), payload: { text: 'edited' } })
        ])
      })
      t.equal(new Set(asc).size, asc.length, 'no message twice')
      t.notOk(asc.includes('m29'), 'a message deleted before its page was read does not appear')
      t.ok(asc.includes('new0') && asc.includes('new1'), 'appends made while paging appear on later pages')
      for (const message of range(0, 8)) t.ok(asc.includes(message), `${message}, read before the changes, is there`)

      // In desc order, appends never shift a page.
      const { id: other } = await conversationWith(app, 20)
      const desc = await allPages(app, other, 'limit=5&order=desc', async (page) => {
        await Promise.all(Array.from({ length: 3 }, (_, i) =>
          app.inject({ method: 'POST', url: url(other, '/messages'), payload: { messages: [{ id: `late${page}-${i}`, role: 'user' }] } })))
      })
      t.same(desc, range(0, 20).reverse(), 'exactly the messages that existed when paging began, newest first')
    })

    t.test('a cursor of another conversation, order or incarnation is 400', async (t) => {
      const { id } = await conversationWith(app, 5)
      const { id: other } = await conversationWith(app, 5)
      const { nextCursor } = (await app.inject({ method: 'GET', url: url(id, '/messages?limit=2') })).json()
      assertError(t, await app.inject({ method: 'GET', url: url(other, `/messages?limit=2&cursor=${nextCursor as string}`) }), 400, 'FST_ERR_VALIDATION')
      assertError(t, await app.inject({ method: 'GET', url: url(id, `/messages?limit=2&order=desc&cursor=${nextCursor as string}`) }), 400, 'FST_ERR_VALIDATION')
      assertError(t, await app.inject({ method: 'GET', url: url(id, '/messages?cursor=not-a-cursor') }), 400, 'FST_ERR_VALIDATION')
      await app.inject({ method: 'DELETE', url: url(id) })
      await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', messages: [{ id: 'm0', role: 'user' }, { id: 'm1', role: 'user' }, { id: 'm2', role: 'user' }] } })
      assertError(t, await app.inject({ method: 'GET', url: url(id, `/messages?limit=2&cursor=${nextCursor as string}`) }), 400, 'FST_ERR_VALIDATION')
    })

    t.test('bad queries are 400, a missing conversation 404', async (t) => {
      const { id } = await conversationWith(app, 1)
      for (const query of ['limit=0', 'limit=1001', 'order=sideways', 'maxTokens=0', 'other=1']) {
        assertError(t, await app.inject({ method: 'GET', url: url(id, `/messages?${query}`) }), 400, 'FST_ERR_VALIDATION')
      }
      assertError(t, await app.inject({ method: 'GET', url: url(uniqueId('missing'), '/messages') }), 404, 'CONVERSATION_NOT_FOUND')
    })
  })

  t.test(`[${backend.name}] tail reads and summaries of a conversation`, async (t) => {
    const app = await backend.build(t)
    const { id } = await conversationWith(app, 12)
    const tail = await app.inject({ method: 'GET', url: url(id, '?lastMessages=5') })
    t.equal(tail.statusCode, 200)
    t.same(tail.json().messages.map((m: Json) => m.id), range(7, 12), 'the newest 5, oldest first')
    t.equal(tail.json().messageCount, 12)
    const full = await app.inject({ method: 'GET', url: url(id) })
    t.equal(tail.headers.etag, full.headers.etag, 'the ETag names the version, whatever the view')
    t.same(full.json().messages.length, 12)
    t.equal(full.json().messageCount, 12, 'every read carries messageCount')
    t.same((await app.inject({ method: 'GET', url: url(id, '?lastMessages=0') })).json().messages, [])
    t.equal((await app.inject({ method: 'GET', url: url(id, '?lastMessages=1000') })).json().messages.length, 12)
    const summary = await app.inject({ method: 'GET', url: url(id, '?view=summary') })
    t.notOk('messages' in summary.json(), 'a summary has no messages')
    t.equal(summary.json().messageCount, 12)
    for (const query of ['lastMessages=1001', 'lastMessages=-1', 'view=summary&lastMessages=2', 'view=other', 'extra=1']) {
      assertError(t, await app.inject({ method: 'GET', url: url(id, `?${query}`) }), 400, 'FST_ERR_VALIDATION')
    }
  })

  t.test(`[${backend.name}] context windows`, async (t) => {
    const app = await backend.build(t)
    const texts = ['one', 'a somewhat longer message than the others', 'two', 'three', 'and the newest message of all']
    const { id } = await conversationWith(app, texts.length, (i) => texts[i] as string)
    const tokens = texts.map((text) => countTokens({ text }))
    const newestThree = (tokens[2] as number) + (tokens[3] as number) + (tokens[4] as number)
    const window = await app.inject({ method: 'GET', url: url(id, `/messages?order=desc&maxTokens=${newestThree + (tokens[1] as number) - 1}`) })
    t.equal(window.statusCode, 200)
    t.same(ids(window), ['m4', 'm3', 'm2'], 'the newest that fit, stopping at the first that does not (m0 would fit, but the window is contiguous)')
    t.same(window.json().items.map((m: Json) => m.tokens), [tokens[4], tokens[3], tokens[2]], 'each item carries its tokens')
    t.equal(window.json().totalTokens, newestThree)
    t.equal(window.json().nextCursor, null, 'a window has no cursor')
    t.equal(window.json().messageCount, 5)
    t.same(ids(await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=1000000&limit=2') })), ['m4', 'm3'], 'both bounds apply')
    t.same(ids(await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=1000000') })), ['m4', 'm3', 'm2', 'm1', 'm0'])
    t.same(ids(await app.inject({ method: 'GET', url: url(id, `/messages?order=desc&maxTokens=${(tokens[4] as number) - 1}`) })), [], 'nothing, when the newest does not fit')
    const card = await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'card', role: 'assistant', kind: 'adaptiveCard', text: 'see', cardJson: { type: 'AdaptiveCard', body: [] } }] } })
    t.equal(card.statusCode, 201)
    const withCard = await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=1000000&limit=1') })
    t.equal(withCard.json().items[0].tokens, countTokens({ text: 'see', cardJson: { type: 'AdaptiveCard', body: [] } }), "a card counts its text and its JSON's tokens")
    for (const query of ['maxTokens=10', 'order=asc&maxTokens=10', 'order=desc&maxTokens=10&cursor=abc']) {
      assertError(t, await app.inject({ method: 'GET', url: url(id, `/messages?${query}`) }), 400, 'FST_ERR_VALIDATION')
    }
  })

  t.test(`[${backend.name}] one message: read, edit, delete`, async (t) => {
    const app = await backend.build(t)

    t.test('reads one message, or answers 404', async (t) => {
      const { id } = await conversationWith(app, 3)
      const read = await app.inject({ method: 'GET', url: url(id, '/messages/m1') })
      t.equal(read.statusCode, 200)
      t.match(read.json(), { id: 'm1', role: 'assistant', text: 'message 1' })
      assertError(t, await app.inject({ method: 'GET', url: url(id, '/messages/nope') }), 404, 'MESSAGE_NOT_FOUND')
      assertError(t, await app.inject({ method: 'GET', url: url(uniqueId('missing'), '/messages/m1') }), 404, 'CONVERSATION_NOT_FOUND')
    })

    t.test('an edit is a merge patch and a write to its conversation', async (t) => {
      const { id, etag } = await conversationWith(app, 3)
      const before = (await app.inject({ method: 'GET', url: url(id) })).json()
      await new Promise((resolve) => setTimeout(resolve, 5))
      assertError(t, await app.inject({ method: 'PATCH', url: url(id, '/messages/m1'), payload: { text: 'x' }, headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED')
      const edited = await app.inject({ method: 'PATCH', url: url(id, '/messages/m1'), payload: { text: 'edited', metadata: { k: 1 } }, headers: { 'if-match': etag } })
      t.equal(edited.statusCode, 200)
      t.match(edited.json(), { id: 'm1', role: 'assistant', text: 'edited', metadata: { k: 1 } })
      t.not(edited.headers.etag, etag, "the conversation's new ETag")
      const after = await app.inject({ method: 'GET', url: url(id) })
      t.equal(after.headers.etag, edited.headers.etag)
      t.equal(after.json().version, before.version + 1, 'version +1')
      t.ok(after.json().updatedAt > before.updatedAt, 'updatedAt moves')
      t.ok(after.json().expiresAt > before.expiresAt, 'and the TTL')
      t.match(after.json().messages[1], { text: 'edited', metadata: { k: 1 } })
      const removed = await app.inject({ method: 'PATCH', url: url(id, '/messages/m1'), payload: { metadata: null }, headers: { 'content-type': 'application/merge-patch+json' } })
      t.equal(removed.statusCode, 200)
      t.notOk('metadata' in removed.json(), 'null removes a field')
      const window = await app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=100000') })
      t.equal(window.json().items.find((m: Json) => m.id === 'm1').tokens, countTokens({ text: 'edited' }), 'tokens are counted again')
      assertError(t, await app.inject({ method: 'PATCH', url: url(id, '/messages/m1'), payload: { role: 'user' } }), 400, 'FST_ERR_VALIDATION')
      assertError(t, await app.inject({ method: 'PATCH', url: url(id, '/messages/nope'), payload: { text: 'x' } }), 404, 'MESSAGE_NOT_FOUND')
      t.equal((await app.inject({ method: 'GET', url: url(id) })).json().version, before.version + 2, 'rejected edits changed nothing')
    })

    t.test('a deletion is a write, and the id stays used', async (t) => {
      const { id, etag } = await conversationWith(app, 3)
      assertError(t, await app.inject({ method: 'DELETE', url: url(id, '/messages/m1'), headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED')
      const deleted = await app.inject({ method: 'DELETE', url: url(id, '/messages/m1'), headers: { 'if-match': etag } })
      t.equal(deleted.statusCode, 204)
      t.match(deleted.headers.etag, /^"[^"]+"$/)
      const after = (await app.inject({ method: 'GET', url: url(id) })).json()
      t.same(after.messages.map((m: Json) => m.id), ['m0', 'm2'])
      t.equal(after.messageCount, 2)
      t.equal(after.version, 2)
      assertError(t, await app.inject({ method: 'GET', url: url(id, '/messages/m1') }), 404, 'MESSAGE_NOT_FOUND')
      assertError(t, await app.inject({ method: 'DELETE', url: url(id, '/messages/m1') }), 404, 'MESSAGE_NOT_FOUND')
      const retried = await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm1', role: 'assistant', text: 'again' }] } })
      t.equal(retried.statusCode, 200, 'a retried append cannot bring a deleted message back')
      t.match(retried.json(), { appended: 0, skipped: 1, messageCount: 2 })
      t.same(await allPages(app, id, 'limit=1'), ['m0', 'm2'], 'pages skip it')
    })
  })
}
