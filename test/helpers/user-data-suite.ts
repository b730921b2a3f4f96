import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'

// A user's data: the export (one line per conversation, then an end line), the import
// (skip or replace, bad lines reported without stopping the good ones, a size limit of its
// own), and the per-user cap. Run once per backend.

type Json = Record<string, any>

let sequence = 0
const newUser = (): string => `data-user-${process.pid}-${++sequence}-${Date.now().toString(36)}`
const NDJSON = { 'content-type': 'application/x-ndjson' }

async function seed (app: FastifyInstance, userId: string, count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const id = `${userId}-c${i}`
    ids.push(id)
    const created = await app.inject({
      method: 'POST',
      url: '/v1/conversations',
      payload: {
        id,
        userId,
        title: `chat ${i}`,
        metadata: { n: i },
        ...(i % 2 === 0 ? { ttlSeconds: 7200 } : {}),
        messages: [{ id: 'q', role: 'user', text: `question ${i}` }, { id: 'a', role: 'assistant', text: `answer ${i}`, metadata: { model: 'x' } }]
      }
    })
    if (created.statusCode !== 201) throw new Error(created.body)
    if (i % 3 === 0) await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: `s${i}`, turnCount: i, status: 'active' } })
  }
  return ids
}

export async function exportOf (app: FastifyInstance, userId: string): Promise<{ lines: Json[], end: Json, contentType: string }> {
  const response = await app.inject({ method: 'GET', url: `/v1/users/${userId}/export` })
  if (response.statusCode !== 200) throw new Error(response.body)
  const lines = response.body.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
  return { lines: lines.slice(0, -1), end: lines.at(-1), contentType: response.headers['content-type'] as string }
}

export const importInto = async (app: FastifyInstance, userId: string, body: string, query = ''): Promise<{ statusCode: number, json: Json }> => {
  const response = await app.inject({ method: 'POST', url: `/v1/users/${userId}/import${query}`, headers: NDJSON, payload: body })
  return { statusCode: response.statusCode, json: response.json() }
}

const ndjson = (lines: unknown[]): string => lines.map((line) => typeof line === 'string' ? line : JSON.stringify(line)).join('\n') + '\n'

/** A line as another deployment would hold it: without what each write makes again. */
export function portable (line: Json): Json {
  const { expiresAt: _e, version: _v, ...conversation } = line.conversation
  if (line.workflowState === null) return { conversation, workflowState: null }
  const { updatedAt: _su, expiresAt: _se, version: _sv, ...workflowState } = line.workflowState
  return { conversation, workflowState }
}

export function userDataSuite (backend: Backend): void {
  t.test(`[${backend.name}] export and import`, async (t) => {
    const app = await backend.build(t, { MAX_MESSAGES_PER_CONVERSATION: '50', MAX_TTL_SECONDS: '100000' })

    t.test('an export holds every conversation, each as a read answers it, then an end line', async (t) => {
      const userId = newUser()
      const ids = await seed(app, userId, 4)
      const { lines, end, contentType } = await exportOf(app, userId)
      t.match(contentType, /^application\/x-ndjson/)
      t.same(end, { type: 'end', conversations: 4 })
      t.same(lines.map((line) => line.conversation.id), [...ids].reverse(), 'most recently updated first')
      for (const line of lines) {
        const { conversation } = line
        t.equal(line.type, 'conversation')
        t.same(conversation, (await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id}` })).json(), `${conversation.id} as a read answers it`)
        const state = await app.inject({ method: 'GET', url: `/v1/conversations/${conversation.id}/workflow-state` })
        t.same(line.workflowState, state.statusCode === 200 ? state.json() : null, 'with its workflow state')
      }
      t.same(await exportOf(app, newUser()), { lines: [], end: { type: 'end', conversations: 0 }, contentType }, 'a user with none')
    })

    t.test('an export walks past one page of the list, with no conversation twice', async (t) => {
      const userId = newUser()
      await seed(app, userId, 230)
      const { lines, end } = await exportOf(app, userId)
      t.equal(end.conversations, 230)
      t.equal(new Set(lines.map((line) => line.conversation.id)).size, 230)
    })

    t.test('an import of an export gives the same conversations with new ETags; again, it skips them', async (t) => {
      const userId = newUser()
      const ids = await seed(app, userId, 6)
      const tags = await Promise.all(ids.map(async (id) => (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).headers.etag))
      const exported = await exportOf(app, userId)
      t.equal((await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations` })).json().deleted, 6)
      const body = ndjson([...exported.lines, exported.end])
      t.same(await importInto(app, userId, body), { statusCode: 200, json: { imported: 6, skipped: 0, failed: [], failedCount: 0 } })
      const imported = await exportOf(app, userId)
      t.same(imported.lines.map(portable), exported.lines.map(portable), 'field by field, but for what each write makes again')
      const newTags = await Promise.all(ids.map(async (id) => (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).headers.etag))
      t.ok(newTags.every((tag, i) => tag !== tags[i]), 'new ETags')
      t.same(await importInto(app, userId, body), { statusCode: 200, json: { imported: 0, skipped: 6, failed: [], failedCount: 0 } }, 'idempotent')
      const again = await exportOf(app, userId)
      t.same(again.lines, imported.lines, 'skip leaves every conversation as it was')
    })

    t.test('mode=replace replaces an existing conversation of the same user', async (t) => {
      const userId = newUser()
      const [id] = await seed(app, userId, 1)
      const { lines } = await exportOf(app, userId)
      const line = lines[0] as Json
      await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ id: 'later', role: 'user', text: 'after the export' }] } })
      const result = await importInto(app, userId, ndjson([line]), '?mode=replace')
      t.same(result.json, { imported: 1, skipped: 0, failed: [], failedCount: 0 })
      const now = (await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).json()
      t.same(now.messages, line.conversation.messages, 'back to the exported messages')
      t.equal(now.version, 1, 'a new incarnation')
      const other = await importInto(app, newUser(), ndjson([{ ...line, conversation: { ...line.conversation, userId: 'someone-else' } }]), '?mode=replace')
      t.equal(other.json.failed[0]?.code, 'FST_ERR_VALIDATION', 'a line of another user than the import\'s')
    })

    t.test('bad lines are reported by number, and never stop the good ones or write half a conversation', async (t) => {
      const userId = newUser()
      const good = (n: number): Json => ({ type: 'conversation', conversation: { id: `${userId}-good-${n}`, userId, messages: [{ id: 'm', role: 'user', text: `good ${n}` }] } })
      const tooMany = { type: 'conversation', conversation: { id: `${userId}-big`, userId, messages: Array.from({ length: 51 }, (_, i) => ({ id: `m${i}`, role: 'user' })) } }
      const taken = `${userId}-taken`
      await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: taken, userId: 'owner-of-taken' } })
      const body = ndjson([
        good(1),
        '{not json',
        { type: 'conversation', conversation: { id: `${userId}-bad`, userId, status: 'bogus' } },
        '',
        { type: 'conversation', conversation: { id: `${userId}-other`, userId: 'another-user' } },
        tooMany,
        { type: 'conversation', conversation: { id: `${userId}-long`, userId, ttlSeconds: 100001 } },
        { type: 'conversation', conversation: { id: taken, userId } },
        { type: 'something' },
        good(2),
        { type: 'end', conversations: 2 }
      ])
      const { statusCode, json } = await importInto(app, userId, body, '?mode=replace')
      t.equal(statusCode, 200)
      t.equal(json.imported, 2)
      t.equal(json.failedCount, 7)
      t.same(json.failed.map((failure: Json) => [failure.line, failure.code]), [
        [2, 'FST_ERR_VALIDATION'], [3, 'FST_ERR_VALIDATION'], [5, 'FST_ERR_VALIDATION'], [6, 'TOO_MANY_MESSAGES'], [7, 'FST_ERR_VALIDATION'],
        [8, 'USER_MISMATCH'], [9, 'FST_ERR_VALIDATION']
      ])
      t.ok(json.failed.every((failure: Json) => typeof failure.message === 'string' && !failure.message.includes('good')), 'messages name the problem, not the data')
      const listed = (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?view=summary` })).json().items
      t.same(listed.map((item: Json) => item.id).sort(), [`${userId}-good-1`, `${userId}-good-2`])
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${userId}-big` })).statusCode, 404, 'not half of the big one')
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${taken}` })).json().userId, 'owner-of-taken', 'not another user\'s')
    })

    t.test('a body past IMPORT_MAX_BYTES is 413, and another type 415', async (t) => {
      const small = await backend.build(t, { IMPORT_MAX_BYTES: '2048' })
      const userId = newUser()
      const lines = Array.from({ length: 40 }, (_, i) => ({ type: 'conversation', conversation: { id: `${userId}-${i}`, userId } }))
      const response = await small.inject({ method: 'POST', url: `/v1/users/${userId}/import`, headers: NDJSON, payload: ndjson(lines) })
      t.equal(response.statusCode, 413)
      t.equal(response.json().code, 'IMPORT_TOO_LARGE')
      t.equal((await small.inject({ method: 'GET', url: `/v1/users/${userId}/conversations` })).json().items.length, 0, 'a declared length past it writes nothing')
      const json = await small.inject({ method: 'POST', url: `/v1/users/${userId}/import`, payload: { type: 'end', conversations: 0 } })
      t.equal(json.statusCode, 415)
    })
  })

  t.test(`[${backend.name}] the per-user cap`, async (t) => {
    const app = await backend.build(t, { MAX_CONVERSATIONS_PER_USER: '3' })
    const list = async (userId: string): Promise<string[]> =>
      (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?view=summary` })).json().items.map((item: Json) => item.id)

    t.test('a create past the cap deletes the least recently updated, with their workflow state', async (t) => {
      const userId = newUser()
      for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: `${userId}-${i}`, userId } })
      await app.inject({ method: 'PUT', url: `/v1/conversations/${userId}-1/workflow-state`, payload: { step: 's', turnCount: 0, status: 'active' } })
      // Written to last: c0 is now more recent than c1.
      await app.inject({ method: 'POST', url: `/v1/conversations/${userId}-0/messages`, payload: { messages: [{ role: 'user', text: 'still here' }] } })
      t.same(await list(userId), [`${userId}-0`, `${userId}-2`, `${userId}-1`])
      await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: `${userId}-3`, userId } })
      t.same(await list(userId), [`${userId}-3`, `${userId}-0`, `${userId}-2`])
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${userId}-1` })).statusCode, 404)
      t.equal((await app.inject({ method: 'GET', url: `/v1/conversations/${userId}-1/workflow-state` })).statusCode, 404)
      await app.inject({ method: 'PUT', url: `/v1/conversations/${userId}-4`, payload: { userId } })
      await app.inject({ method: 'POST', url: `/v1/conversations/${userId}-4/fork`, payload: { id: `${userId}-5` } })
      t.same(await list(userId), [`${userId}-5`, `${userId}-4`, `${userId}-3`], 'PUT and fork creates count too')
      t.equal((await list(newUser())).length, 0, 'other users are not touched')
    })

    t.test('concurrent creates end at the cap', async (t) => {
      const userId = newUser()
      const creates = await Promise.all(Array.from({ length: 12 }, async (_, i) =>
        await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: `${userId}-${i}`, userId } })))
      t.ok(creates.every((response) => response.statusCode === 201))
      const listed = await list(userId)
      t.equal(listed.length, 3)
      const readable = await Promise.all(Array.from({ length: 12 }, async (_, i) => (await app.inject({ method: 'GET', url: `/v1/conversations/${userId}-${i}` })).statusCode))
      t.equal(readable.filter((status) => status === 200).length, 3, 'the others are deleted, not only unlisted')
    })

    t.test('an import obeys it too', async (t) => {
      const userId = newUser()
      const lines = Array.from({ length: 5 }, (_, i) => ({ type: 'conversation', conversation: { id: `${userId}-${i}`, userId } }))
      t.equal((await importInto(app, userId, ndjson(lines))).json.imported, 5)
      t.same(await list(userId), [`${userId}-4`, `${userId}-3`, `${userId}-2`])
    })
  })
}
