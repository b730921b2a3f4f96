import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { Backend } from './backends.js'

// Retention per conversation: `ttlSeconds` on create, PUT and PATCH (null returns to
// REDIS_TTL), bounded by MAX_TTL_SECONDS, and used by every write to the conversation and
// to what it owns, also by the writes that do not carry it. Run once per backend.

type Json = Record<string, any>

let sequence = 0
const newId = (): string => `ttl-${process.pid}-${++sequence}-${Date.now().toString(36)}`
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`
const DEFAULT_TTL = 86400
const MAX_TTL = 100_000

/** Seconds between updatedAt (or the state's) and expiresAt. */
const lifeOf = (body: Json): number => (Date.parse(body.expiresAt) - Date.parse(body.updatedAt)) / 1000

async function expectOk (t: Test, response: Promise<LightMyRequestResponse>, what: string): Promise<Json> {
  const answer = await response
  t.ok(answer.statusCode < 300, `${what}: ${answer.statusCode}${answer.statusCode < 300 ? '' : ` ${answer.body}`}`)
  return answer.statusCode === 204 ? {} : answer.json()
}

const read = async (app: FastifyInstance, id: string): Promise<Json> => (await app.inject({ method: 'GET', url: url(id) })).json()

export function retentionSuite (backend: Backend): void {
  t.test(`[${backend.name}] retention per conversation`, async (t) => {
    const app = await backend.build(t, { MAX_TTL_SECONDS: String(MAX_TTL) })

    t.test('ttlSeconds on create is answered by reads and used by every later write', async (t) => {
      const id = newId()
      const created = await expectOk(t, app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', ttlSeconds: 120, messages: [{ id: 'm1', role: 'user' }] } }), 'create')
      t.equal(created.ttlSeconds, 120)
      t.equal(lifeOf(created), 120)
      t.equal((await read(app, id)).ttlSeconds, 120, 'a read answers it')
      await expectOk(t, app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm2', role: 'user' }] } }), 'append')
      t.equal(lifeOf(await read(app, id)), 120, 'an append uses the conversation\'s own TTL')
      await expectOk(t, app.inject({ method: 'PATCH', url: url(id, '/messages/m1'), payload: { text: 'edited' } }), 'edit')
      t.equal(lifeOf(await read(app, id)), 120, 'so does a message edit')
      await expectOk(t, app.inject({ method: 'DELETE', url: url(id, '/messages/m2') }), 'message delete')
      t.equal(lifeOf(await read(app, id)), 120, 'and a message deletion')
      const state = await expectOk(t, app.inject({ method: 'PUT', url: url(id, '/workflow-state'), payload: { step: 's', turnCount: 1, status: 'active' } }), 'workflow state')
      t.equal(lifeOf(state), 120, 'the workflow state lives as long as its conversation')
      const listed = (await app.inject({ method: 'GET', url: '/v1/users/u1/conversations?view=summary&limit=200' })).json().items.find((item: Json) => item.id === id)
      t.equal(listed?.ttlSeconds, 120, 'lists answer it too')
    })

    t.test('PATCH sets it and null returns to REDIS_TTL; PUT sets it or drops it', async (t) => {
      const id = newId()
      await expectOk(t, app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1' } }), 'create')
      const plain = await read(app, id)
      t.equal(plain.ttlSeconds, undefined, 'no ttlSeconds unless set')
      t.equal(lifeOf(plain), DEFAULT_TTL)
      const patched = await expectOk(t, app.inject({ method: 'PATCH', url: url(id), payload: { ttlSeconds: 300 } }), 'patch')
      t.equal(patched.ttlSeconds, 300)
      t.equal(lifeOf(patched), 300)
      await expectOk(t, app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm1', role: 'user' }] } }), 'append')
      t.equal(lifeOf(await read(app, id)), 300, 'later writes use the patched TTL')
      const reset = await expectOk(t, app.inject({ method: 'PATCH', url: url(id), payload: { ttlSeconds: null } }), 'patch null')
      t.equal(reset.ttlSeconds, undefined)
      t.equal(lifeOf(reset), DEFAULT_TTL, 'null returns to REDIS_TTL')
      await expectOk(t, app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: [{ id: 'm2', role: 'user' }] } }), 'append')
      t.equal(lifeOf(await read(app, id)), DEFAULT_TTL, 'and so do the writes after it')
      const put = await expectOk(t, app.inject({ method: 'PUT', url: url(id), payload: { userId: 'u1', ttlSeconds: MAX_TTL } }), 'put')
      t.equal(lifeOf(put), MAX_TTL, 'PUT sets it, up to MAX_TTL_SECONDS')
      const dropped = await expectOk(t, app.inject({ method: 'PUT', url: url(id), payload: { userId: 'u1' } }), 'put without it')
      t.equal(dropped.ttlSeconds, undefined)
      t.equal(lifeOf(dropped), DEFAULT_TTL, 'a PUT without it follows REDIS_TTL again')
    })

    t.test('past MAX_TTL_SECONDS, zero or not a whole number is 400, and nothing changes', async (t) => {
      const id = newId()
      await expectOk(t, app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', ttlSeconds: 60 } }), 'create')
      const before = await read(app, id)
      const attempts: Array<[string, string, Json]> = [
        ['POST', '/v1/conversations', { id: newId(), userId: 'u1', ttlSeconds: MAX_TTL + 1 }],
        ['PUT', url(id), { userId: 'u1', ttlSeconds: MAX_TTL + 1 }],
        ['PATCH', url(id), { ttlSeconds: MAX_TTL + 1 }],
        ['PATCH', url(id), { ttlSeconds: 0 }],
        ['PATCH', url(id), { ttlSeconds: 1.5 }],
        ['PATCH', url(id), { ttlSeconds: '60' }]
      ]
      for (const [method, path, payload] of attempts) {
        const response = await app.inject({ method: method as 'POST', url: path, payload })
        t.equal(response.statusCode, 400, `${method} ${JSON.stringify(payload.ttlSeconds)}: 400`)
        t.equal(response.json().code, 'FST_ERR_VALIDATION')
      }
      t.same(await read(app, id), before, 'the conversation is as it was')
    })
  })
}
