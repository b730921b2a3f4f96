import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'

// Fork: POST …/fork copies one version of a conversation, through one of its messages, into
// a new conversation (ids, texts, times and token counts kept, metadata and workflow state
// too), with forkedFrom. Run once per backend.

type Json = Record<string, any>

let sequence = 0
const newId = (what: string): string => `${what}-${process.pid}-${++sequence}-${Date.now().toString(36)}`
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

async function source (app: FastifyInstance, count: number, userId = 'forker'): Promise<string> {
  const id = newId('source')
  const messages = Array.from({ length: count }, (_, i) => ({
    id: `m${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `message ${i} of ${id}`, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString()
  }))
  const created = await app.inject({
    method: 'POST', url: '/v1/conversations', payload: { id, userId, title: 'the source', metadata: { topic: 'forks' }, ttlSeconds: 3600, messages }
  })
  if (created.statusCode !== 201) throw new Error(created.body)
  await app.inject({ method: 'PUT', url: url(id, '/workflow-state'), payload: { step: 'draft', turnCount: 2, status: 'active', collectedData: { a: 1 } } })
  return id
}

const read = async (app: FastifyInstance, id: string): Promise<Json> => (await app.inject({ method: 'GET', url: url(id) })).json()
const tokensOf = async (app: FastifyInstance, id: string): Promise<number[]> =>
  (await app.inject({ method: 'GET', url: url(id, '/messages?limit=1000') })).json().items.map((message: Json) => message.tokens)

export function forkSuite (backend: Backend): void {
  t.test(`[${backend.name}] fork`, async (t) => {
    const app = await backend.build(t)

    for (const [where, through, count] of [['the first', 'm0', 1], ['a middle', 'm3', 4], ['the last', 'm7', 8], ['no', undefined, 8]] as const) {
      t.test(`at ${where} message`, async (t) => {
        const id = await source(app, 8)
        const before = await read(app, id)
        const forkId = newId('fork')
        const response = await app.inject({ method: 'POST', url: url(id, '/fork'), payload: { id: forkId, ...(through === undefined ? {} : { messageId: through }) } })
        t.equal(response.statusCode, 201, response.statusCode === 201 ? 'created' : response.body)
        t.equal(response.headers.location, `/v1/conversations/${forkId}`)
        const fork = await read(app, forkId)
        t.same(fork, response.json(), 'the answer is what a read gives')
        t.equal(response.headers.etag, (await app.inject({ method: 'GET', url: url(forkId) })).headers.etag)
        t.same(fork.messages, before.messages.slice(0, count), 'ids, roles, texts and times kept')
        t.same(await tokensOf(app, forkId), (await tokensOf(app, id)).slice(0, count), 'token counts kept')
        t.same(fork.forkedFrom, { conversationId: id, messageId: `m${count - 1}`, version: before.version })
        t.match(fork, { userId: 'forker', tenantId: before.tenantId, title: 'the source', metadata: { topic: 'forks' }, ttlSeconds: 3600, version: 1, messageCount: count })
        const state = (await app.inject({ method: 'GET', url: url(forkId, '/workflow-state') })).json()
        t.match(state, { step: 'draft', turnCount: 2, status: 'active', collectedData: { a: 1 }, conversationId: forkId, version: 1 })
        t.same(await read(app, id), before, 'the source is unchanged')
      })
    }

    t.test('a fork is a conversation of its own: it lists, takes writes, and its source goes on apart', async (t) => {
      const id = await source(app, 3, 'lister')
      const forkId = newId('fork')
      await app.inject({ method: 'POST', url: url(id, '/fork'), payload: { id: forkId, messageId: 'm1', title: 'branch' } })
      const listed = (await app.inject({ method: 'GET', url: '/v1/users/lister/conversations?view=summary' })).json().items
      t.same(listed.map((item: Json) => item.id), [forkId, id], 'newest first')
      t.equal(listed[0].title, 'branch')
      const appended = await app.inject({ method: 'POST', url: url(forkId, '/messages'), payload: { messages: [{ id: 'm2', role: 'assistant', text: 'another answer' }] } })
      t.equal(appended.statusCode, 201, 'the fork\'s copy of m2 was not taken, so the id is free there')
      t.equal((await read(app, id)).messages[2].text, `message 2 of ${id}`, 'the source keeps its own m2')
    })

    t.test('an unknown source or message is 404, an existing id 409, and nothing is written', async (t) => {
      const id = await source(app, 2)
      const missing = await app.inject({ method: 'POST', url: url('no-such-source', '/fork'), payload: {} })
      t.match(missing, { statusCode: 404 })
      t.equal(missing.json().code, 'CONVERSATION_NOT_FOUND')
      const forkId = newId('fork')
      const noMessage = await app.inject({ method: 'POST', url: url(id, '/fork'), payload: { id: forkId, messageId: 'm9' } })
      t.equal(noMessage.json().code, 'MESSAGE_NOT_FOUND')
      t.equal((await app.inject({ method: 'GET', url: url(forkId) })).statusCode, 404)
      const taken = await app.inject({ method: 'POST', url: url(id, '/fork'), payload: { id } })
      t.equal(taken.statusCode, 409)
      t.equal(taken.json().code, 'CONVERSATION_EXISTS')
      t.equal((await read(app, id)).version, 1, 'the source is untouched')
    })

    t.test('into another user, with a generated id', async (t) => {
      const id = await source(app, 2, 'giver')
      const response = await app.inject({ method: 'POST', url: url(id, '/fork'), payload: { userId: 'taker' } })
      t.equal(response.statusCode, 201)
      const fork = response.json()
      t.match(fork.id, /^[0-9a-f-]{36}$/)
      t.equal(fork.userId, 'taker')
      const taker = (await app.inject({ method: 'GET', url: '/v1/users/taker/conversations?view=summary' })).json().items
      t.ok(taker.some((item: Json) => item.id === fork.id), 'it is in the new owner\'s list')
    })

    t.test('a fork racing appends to its source is a snapshot of one version', async (t) => {
      const id = await source(app, 1, 'racer')
      const forks: Array<Promise<Json>> = []
      for (let i = 0; i < 30; i++) {
        const append = app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: `r${i}`, role: 'user', text: `race ${i}` }] } })
        if (i % 3 === 0) forks.push(app.inject({ method: 'POST', url: url(id, '/fork'), payload: {} }).then((response) => response.json()))
        t.equal((await append).statusCode, 201)
      }
      const final = await read(app, id)
      const versions = new Set<number>()
      for (const fork of await Promise.all(forks)) {
        const { version, messageId } = fork.forkedFrom
        versions.add(version)
        // Every append adds one message to the one of the create: version v holds v messages.
        t.equal(fork.messages.length, version, `the fork of version ${version} holds that version's messages`)
        t.same(fork.messages, final.messages.slice(0, version), 'in the source\'s order, with nothing from a later write')
        t.equal(messageId, fork.messages.at(-1).id)
      }
      t.comment(`forks of ${versions.size} versions: ${[...versions].join(', ')}`)
    })

    t.test('forks an empty conversation', async (t) => {
      const id = newId('empty')
      await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'forker' } })
      const fork = (await app.inject({ method: 'POST', url: url(id, '/fork'), payload: {} })).json()
      t.same(fork.messages, [])
      t.same(fork.forkedFrom, { conversationId: id, messageId: null, version: 1 })
      t.equal((await app.inject({ method: 'GET', url: url(fork.id, '/workflow-state') })).statusCode, 404, 'no workflow state to copy')
    })
  })
}
