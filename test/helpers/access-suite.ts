import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t from 'tap'
import { unique } from './api-suite.js'
import type { Backend } from './backends.js'
import { startIdentityProvider, type IdentityProvider } from './identity-provider.js'
import { openFeed, type Feed } from './event-feed.js'

// Who may do what (issue 12), on one backend: roles on every route, tenant isolation in
// every route and list, delegated user tokens, and the audit lines. Tokens are really
// signed by a local identity provider; the store is the backend's real one.

export const AUDIENCE = 'api://conversation-store'
export const OPS_KEY = 'ops-key-0123456789'
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

export const CALLERS = {
  callers: [
    { name: 'reader', appId: 'app-reader', roles: ['read'], tenants: ['contoso'] },
    { name: 'writer', appId: 'app-writer', roles: ['read', 'write'], tenants: ['contoso'] },
    { name: 'admin', appId: 'app-admin', roles: ['admin'], tenants: ['contoso'] },
    { name: 'fabrikam-bot', appId: 'app-fabrikam', roles: ['admin'], tenants: ['fabrikam'] },
    { name: 'two-tenants', appId: 'app-both', roles: ['read'], tenants: ['contoso', 'fabrikam'] },
    { name: 'front-end', appId: 'app-front-end', roles: ['write'], tenants: ['contoso'] },
    { name: 'ops', apiKeySha256: sha256(OPS_KEY), roles: ['admin'], tenants: ['*'] }
  ]
}

/** The callers file above, written once per process. */
export function callersFile (callers: unknown = CALLERS): string {
  const path = join(mkdtempSync(join(tmpdir(), 'callers-')), 'callers.json')
  writeFileSync(path, JSON.stringify(callers))
  return path
}

export function authEnv (idp: IdentityProvider, file = callersFile()): Record<string, string> {
  return { AUTH_JWT_ISSUER: idp.issuer, AUTH_JWT_AUDIENCE: AUDIENCE, AUTH_JWKS_URL: idp.jwksUrl, AUTH_CALLERS_FILE: file }
}

type Json = Record<string, any>

/** A conversation as ops (every tenant) creates it: one message m1 and a workflow state. */
async function seed (app: FastifyInstance, userId: string, tenantId: string): Promise<string> {
  const id = unique('c')
  const ops = { authorization: `Bearer ${OPS_KEY}` }
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', headers: ops, payload: { id, userId, tenantId, messages: [{ id: 'm1', role: 'user', text: 'hello' }] } })
  if (created.statusCode !== 201) throw new Error(`seed: ${created.statusCode} ${created.body}`)
  const state = await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, headers: ops, payload: { step: 's1', turnCount: 1, status: 'active' } })
  if (state.statusCode !== 201) throw new Error(`seed state: ${state.statusCode}`)
  return id
}

/** Every /v1 route, with the role it needs and what it answers when allowed. */
function routes (id: string, userId: string): Array<{ name: string, role: 'read' | 'write' | 'admin', request: InjectOptions, ok: number }> {
  const conversation = `/v1/conversations/${id}`
  return [
    { name: 'create', role: 'write', ok: 201, request: { method: 'POST', url: '/v1/conversations', payload: { id: `${id}-new`, userId, tenantId: 'contoso' } } },
    { name: 'read', role: 'read', ok: 200, request: { method: 'GET', url: conversation } },
    { name: 'replace', role: 'write', ok: 200, request: { method: 'PUT', url: conversation, payload: { userId, tenantId: 'contoso', title: 'replaced' } } },
    { name: 'patch', role: 'write', ok: 200, request: { method: 'PATCH', url: conversation, payload: { title: 'patched' } } },
    { name: 'append', role: 'write', ok: 201, request: { method: 'POST', url: `${conversation}/messages`, payload: { messages: [{ role: 'user', text: 'more' }] } } },
    { name: 'page', role: 'read', ok: 200, request: { method: 'GET', url: `${conversation}/messages` } },
    { name: 'read message', role: 'read', ok: 200, request: { method: 'GET', url: `${conversation}/messages/m1` } },
    { name: 'edit message', role: 'write', ok: 200, request: { method: 'PATCH', url: `${conversation}/messages/m1`, payload: { text: 'edited' } } },
    { name: 'delete message', role: 'write', ok: 204, request: { method: 'DELETE', url: `${conversation}/messages/m1` } },
    { name: 'rewind', role: 'write', ok: 200, request: { method: 'DELETE', url: `${conversation}/messages?after=m1` } },
    // A delta to a message that is not in progress: 409 for a caller allowed to write it.
    { name: 'delta', role: 'write', ok: 409, request: { method: 'POST', url: `${conversation}/messages/m1/deltas`, payload: { seq: 1, text: 'x' } } },
    { name: 'append with window', role: 'write', ok: 201, request: { method: 'POST', url: `${conversation}/messages?window=100`, payload: { messages: [{ role: 'user', text: 'more' }] } } },
    { name: 'read state', role: 'read', ok: 200, request: { method: 'GET', url: `${conversation}/workflow-state` } },
    { name: 'replace state', role: 'write', ok: 200, request: { method: 'PUT', url: `${conversation}/workflow-state`, payload: { step: 's2', turnCount: 2, status: 'active' } } },
    { name: 'delete state', role: 'write', ok: 204, request: { method: 'DELETE', url: `${conversation}/workflow-state` } },
    { name: 'delete', role: 'write', ok: 204, request: { method: 'DELETE', url: conversation } },
    { name: 'list', role: 'read', ok: 200, request: { method: 'GET', url: `/v1/users/${userId}/conversations` } },
    { name: 'delete all', role: 'admin', ok: 200, request: { method: 'DELETE', url: `/v1/users/${userId}/conversations` } },
    { name: 'fork', role: 'write', ok: 201, request: { method: 'POST', url: `${conversation}/fork`, payload: { id: `${id}-fork` } } },
    { name: 'fork into another user', role: 'admin', ok: 201, request: { method: 'POST', url: `${conversation}/fork`, payload: { id: `${id}-given`, userId: `${userId}-other` } } },
    { name: 'export', role: 'admin', ok: 200, request: { method: 'GET', url: `/v1/users/${userId}/export` } },
    { name: 'import', role: 'admin', ok: 200, request: { method: 'POST', url: `/v1/users/${userId}/import`, headers: { 'content-type': 'application/x-ndjson' }, payload: importLine(`${id}-imported`, userId, 'contoso') } }
  ]
}

const RANK = { read: 0, write: 1, admin: 2 }

const importLine = (id: string, userId: string, tenantId: string): string =>
  JSON.stringify({ type: 'conversation', conversation: { id, userId, tenantId, messages: [{ id: 'm1', role: 'user', text: 'imported' }] } }) + '\n'

export function accessSuite (backend: Backend): void {
  t.test(`${backend.name}: callers, roles and tenants`, async (t) => {
    const idp = await startIdentityProvider()
    t.teardown(() => idp.close())
    const lines: Json[] = []
    const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
    const app = await backend.build(t, authEnv(idp), { logger: { level: 'info', stream } })
    const as = async (appId: string, request: InjectOptions, claims: Json = {}): Promise<Json> => {
      const token = await idp.sign({ azp: appId, roles: undefined, ...claims })
      return await app.inject({ ...request, headers: { ...request.headers, authorization: `Bearer ${token}` } })
    }
    const ops = async (request: InjectOptions): Promise<Json> =>
      await app.inject({ ...request, headers: { ...request.headers, authorization: `Bearer ${OPS_KEY}` } })
    // The feeds' tests follow over a real socket.
    let listening: Promise<string> | undefined
    const listen = async (): Promise<string> => await (listening ??= app.listen({ port: 0, host: '127.0.0.1' }))
    const versionOf = async (id: string): Promise<number | undefined> => {
      const read = await ops({ method: 'GET', url: `/v1/conversations/${id}` })
      return read.statusCode === 200 ? read.json().version : undefined
    }

    for (const [caller, appId, rank] of [['reader', 'app-reader', 0], ['writer', 'app-writer', 1], ['admin', 'app-admin', 2]] as const) {
      t.test(`${caller}: each route answers by role`, async (t) => {
        for (const route of routes('x', 'x')) {
          const userId = unique('u')
          const id = await seed(app, userId, 'contoso')
          const { request, ok, role } = routes(id, userId).find((candidate) => candidate.name === route.name) as typeof route
          const response = await as(appId, request)
          if (RANK[role] <= rank) {
            t.equal(response.statusCode, ok, `${caller} may ${route.name}`)
          } else {
            t.equal(response.statusCode, 403, `${caller} may not ${route.name}`)
            t.match(response.json(), { statusCode: 403, code: 'FORBIDDEN' })
            t.equal(await versionOf(id), 1, `a refused ${route.name} changes nothing`)
          }
        }
      })
    }

    t.test('another tenant\'s conversation is absent on every route, and stays as it was', async (t) => {
      const userId = unique('u')
      const theirs = await seed(app, userId, 'fabrikam')
      const missing = unique('missing')
      for (const route of routes(theirs, userId)) {
        // Lists are below; a PUT to a missing id creates, so its case is in the next test.
        if (['create', 'replace', 'list', 'delete all', 'export', 'import'].includes(route.name)) continue
        const response = await as('app-admin', route.request)
        const absent = await as('app-admin', routes(missing, userId).find((other) => other.name === route.name)?.request as InjectOptions)
        t.equal(response.statusCode, 404, `${route.name} of another tenant's conversation`)
        t.same(response.json(), { ...absent.json(), message: absent.json().message.replace(missing, theirs) }, `${route.name}: the same answer as for none`)
      }
      t.equal(await versionOf(theirs), 1)
      const state = await ops({ method: 'GET', url: `/v1/conversations/${theirs}/workflow-state` })
      t.equal(state.statusCode, 200, 'its workflow state is still there')
      t.equal((await ops({ method: 'GET', url: `/v1/conversations/${theirs}/messages/m1` })).statusCode, 200, 'and its message')
    })

    t.test('lists and delete-all act only inside the caller\'s tenants', async (t) => {
      const userId = unique('u')
      const ours = [await seed(app, userId, 'contoso'), await seed(app, userId, 'contoso')]
      const theirs = await seed(app, userId, 'fabrikam')
      const idsOf = (response: Json): string[] => response.json().items.map((item: Json) => item.id).sort()
      const list = (query = ''): InjectOptions => ({ method: 'GET', url: `/v1/users/${userId}/conversations${query}` })
      t.same(idsOf(await as('app-admin', list())), [...ours].sort(), 'contoso sees its own')
      t.same(idsOf(await as('app-admin', list('?view=summary&limit=1'))).length, 1)
      t.same(idsOf(await as('app-admin', list('?tenantId=fabrikam'))), [], 'asking for another tenant finds nothing')
      t.same(idsOf(await as('app-fabrikam', list())), [theirs], 'fabrikam sees its own')
      t.same(idsOf(await as('app-both', list())), [...ours, theirs].sort(), 'a caller of two tenants sees both')
      t.same(idsOf(await as('app-both', list('?tenantId=fabrikam'))), [theirs])

      const deleted = await as('app-admin', { method: 'DELETE', url: `/v1/users/${userId}/conversations` })
      t.same(deleted.json(), { deleted: 2 }, 'delete-all counts only what it deleted')
      t.equal(await versionOf(theirs), 1, 'the other tenant\'s conversation is untouched')
      t.same(idsOf(await as('app-fabrikam', list())), [theirs], 'and still listed for its user')
      t.same(idsOf(await ops(list())), [theirs])
      t.same((await as('app-fabrikam', { method: 'DELETE', url: `/v1/users/${userId}/conversations` })).json(), { deleted: 1 })
      t.same(idsOf(await ops(list())), [])
    })

    t.test('export, import and fork act only inside the caller\'s tenants and users', async (t) => {
      const userId = unique('u')
      const ours = await seed(app, userId, 'contoso')
      const theirs = await seed(app, userId, 'fabrikam')
      const exported = await as('app-admin', { method: 'GET', url: `/v1/users/${userId}/export` })
      const lines = exported.body.trim().split('\n').map((line: string) => JSON.parse(line))
      t.same(lines.map((line: Json) => line.conversation?.id ?? line.type), [ours, 'end'], 'an export holds only the caller\'s tenants')
      const intoTheirs = importLine(unique('c'), userId, 'fabrikam')
      const imported = await as('app-admin', { method: 'POST', url: `/v1/users/${userId}/import`, headers: { 'content-type': 'application/x-ndjson' }, payload: intoTheirs })
      t.match(imported.json(), { imported: 0, failedCount: 1, failed: [{ line: 1, code: 'FORBIDDEN' }] }, 'an import into another tenant is refused line by line')
      const replaced = await as('app-admin', {
        method: 'POST', url: `/v1/users/${userId}/import?mode=replace`, headers: { 'content-type': 'application/x-ndjson' }, payload: importLine(theirs, userId, 'contoso')
      })
      t.equal(replaced.json().failed[0]?.code, 'CONVERSATION_NOT_FOUND', 'and cannot pull another tenant\'s conversation in, as a PUT cannot')
      t.equal(await versionOf(theirs), 1)
      const user = unique('user')
      const mine = await seed(app, user, 'contoso')
      const delegated = { scp: 'user_impersonation', oid: user }
      const forkFor = async (target: string): Promise<number> =>
        (await as('app-front-end', { method: 'POST', url: `/v1/conversations/${mine}/fork`, payload: { userId: target } }, delegated)).statusCode
      t.equal(await forkFor(user), 201, 'a delegated token forks its own user\'s conversation')
      t.equal(await forkFor(unique('other')), 403, 'but not into another user')
    })

    t.test('creating or moving a conversation into another tenant is 403, and changes nothing', async (t) => {
      const userId = unique('u')
      const ours = await seed(app, userId, 'contoso')
      const theirs = await seed(app, userId, 'fabrikam')
      const id = unique('c')
      const create = await as('app-writer', { method: 'POST', url: '/v1/conversations', payload: { id, userId, tenantId: 'fabrikam' } })
      t.equal(create.statusCode, 403)
      t.match(create.json(), { code: 'FORBIDDEN', message: /tenant 'fabrikam'/ })
      t.equal(await versionOf(id), undefined, 'nothing was created')
      const noTenant = await as('app-writer', { method: 'POST', url: '/v1/conversations', payload: { id, userId } })
      t.equal(noTenant.statusCode, 403, 'the default tenant is a tenant too')
      const move = await as('app-writer', { method: 'PUT', url: `/v1/conversations/${ours}`, payload: { userId, tenantId: 'fabrikam' } })
      t.equal(move.statusCode, 403)
      t.equal(await versionOf(ours), 1)
      const takeOver = await as('app-writer', { method: 'PUT', url: `/v1/conversations/${theirs}`, payload: { userId, tenantId: 'contoso' } })
      t.equal(takeOver.statusCode, 404, 'a PUT cannot pull another tenant\'s conversation in')
      t.equal(await versionOf(theirs), 1)
      const inside = await as('app-writer', { method: 'PUT', url: `/v1/conversations/${id}`, payload: { userId, tenantId: 'contoso' } })
      t.equal(inside.statusCode, 201, 'a PUT inside the tenant creates')
    })

    t.test('a delegated token reaches only its user\'s conversations', async (t) => {
      const user = unique('user')
      const other = unique('other')
      const mine = await seed(app, user, 'contoso')
      const yours = await seed(app, other, 'contoso')
      const delegated = { scp: 'user_impersonation', oid: user }
      const read = (id: string): InjectOptions => ({ method: 'GET', url: `/v1/conversations/${id}` })
      t.equal((await as('app-front-end', read(mine), delegated)).statusCode, 200)
      t.equal((await as('app-front-end', read(yours), delegated)).statusCode, 404, 'another user\'s conversation is absent')
      t.equal((await as('app-front-end', { method: 'POST', url: `/v1/conversations/${yours}/messages`, payload: { messages: [{ role: 'user', text: 'x' }] } }, delegated)).statusCode, 404)
      t.equal(await versionOf(yours), 1)
      const listed = await as('app-front-end', { method: 'GET', url: `/v1/users/${other}/conversations` }, delegated)
      t.same(listed.json().items, [], 'another user\'s list is empty')
      t.equal(listed.headers['last-event-id'], '0-0', 'and names no position of that user\'s feed')
      const own = await as('app-front-end', { method: 'GET', url: `/v1/users/${user}/conversations` }, delegated)
      t.same(own.json().items.map((item: Json) => item.id), [mine])
      const forOther = await as('app-front-end', { method: 'POST', url: '/v1/conversations', payload: { userId: other, tenantId: 'contoso' } }, delegated)
      t.equal(forOther.statusCode, 403, 'it cannot create for another user')
      const forSelf = await as('app-front-end', { method: 'POST', url: '/v1/conversations', payload: { userId: user, tenantId: 'contoso' } }, delegated)
      t.equal(forSelf.statusCode, 201)
      t.equal((await as('app-front-end', read(yours))).statusCode, 200, 'the same app without a user reaches the whole tenant')
      const noOid = await as('app-front-end', read(mine), { scp: 'user_impersonation', oid: undefined })
      t.equal(noOid.statusCode, 401, 'a delegated token without oid is refused')
    })

    t.test('event feeds follow reach: tenants, delegated users, and a move out of reach ends the stream', async (t) => {
      const address = await listen()
      const user = unique('user')
      const mine = await seed(app, user, 'contoso')
      const yours = await seed(app, unique('other'), 'contoso')
      const follow = async (id: string, appId: string, claims: Json = {}): Promise<Feed> =>
        await openFeed(`${address}/v1/conversations/${id}/events`, { authorization: `Bearer ${await idp.sign({ azp: appId, roles: undefined, ...claims })}` })
      t.equal((await follow(mine, 'app-fabrikam')).status, 404, 'another tenant\'s feed is absent')
      const delegated = { scp: 'user_impersonation', oid: user }
      t.equal((await follow(yours, 'app-front-end', delegated)).status, 404, 'a delegated token follows only its user\'s conversations')
      const own = await follow(mine, 'app-front-end', delegated)
      const reader = await follow(mine, 'app-reader')
      t.same([own.status, reader.status], [200, 200], 'the read role, inside the caller\'s reach')
      await ops({ method: 'POST', url: `/v1/conversations/${mine}/messages`, payload: { messages: [{ id: 'm2', role: 'user', text: 'more' }] } })
      await ops({ method: 'PUT', url: `/v1/conversations/${mine}`, payload: { userId: user, tenantId: 'fabrikam' } })
      await reader.ended
      own.close()
      t.same(reader.events.map((event) => event.event), ['message.created'], 'the move to another tenant ends the stream, and its event is not sent')
    })

    t.test('a user\'s feed: the read role, a delegated token for its own user only, and no event about a conversation out of reach', async (t) => {
      const address = await listen()
      const user = unique('user')
      const follow = async (userId: string, appId: string, claims: Json = {}): Promise<Feed> =>
        await openFeed(`${address}/v1/users/${userId}/events`, { authorization: `Bearer ${await idp.sign({ azp: appId, roles: undefined, ...claims })}` })
      const delegated = { scp: 'user_impersonation', oid: user }
      const other = await follow(unique('other'), 'app-front-end', delegated)
      t.equal(other.status, 403, 'a delegated token follows only its own user')
      t.equal(other.body?.code, 'FORBIDDEN')
      const own = await follow(user, 'app-front-end', delegated)
      const reader = await follow(user, 'app-reader')
      const both = await follow(user, 'app-both')
      t.same([own.status, reader.status, both.status], [200, 200, 200])
      const fabrikam = await seed(app, user, 'fabrikam')
      const contoso = await seed(app, user, 'contoso')
      await ops({ method: 'DELETE', url: `/v1/conversations/${fabrikam}` })
      await ops({ method: 'PATCH', url: `/v1/conversations/${contoso}`, payload: { title: 'seen' } })
      const all = await both.until(4)
      const contosoOnly = await reader.until(2)
      own.close()
      reader.close()
      both.close()
      const summary = (events: Array<{ event?: string, data: string }>): string[] => events.map((event) => `${event.event ?? ''} ${JSON.parse(event.data).conversationId as string}`)
      t.same(summary(all), [`conversation.created ${fabrikam}`, `conversation.created ${contoso}`, `conversation.deleted ${fabrikam}`, `conversation.updated ${contoso}`])
      t.same(summary(contosoOnly), [`conversation.created ${contoso}`, `conversation.updated ${contoso}`], 'a caller of one tenant never hears of another\'s conversation')
    })

    t.test('tokens: unknown app 403, bad token 401, no token 401', async (t) => {
      const request: InjectOptions = { method: 'GET', url: '/v1/users/u1/conversations' }
      const unknown = await as('app-stranger', request)
      t.equal(unknown.statusCode, 403)
      t.match(unknown.json(), { code: 'FORBIDDEN', message: /app-stranger/ })
      const expired = await as('app-reader', request, { exp: Math.floor(Date.now() / 1000) - 120 })
      t.equal(expired.statusCode, 401)
      t.equal(expired.headers['www-authenticate'], 'Bearer error="invalid_token"')
      t.match(expired.json(), { statusCode: 401, code: 'UNAUTHORIZED' })
      const wrongAudience = await as('app-reader', request, { aud: 'api://another' })
      t.equal(wrongAudience.statusCode, 401)
      const none = await app.inject(request)
      t.equal(none.statusCode, 401)
      t.equal(none.headers['www-authenticate'], 'Bearer')
      t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'health needs no token')
    })

    t.test('every write and delete logs one audit line, without the token', async (t) => {
      const userId = unique('u')
      const id = await seed(app, userId, 'contoso')
      const token = await idp.sign({ azp: 'app-admin' })
      const auth = { authorization: `Bearer ${token}` }
      lines.length = 0
      await app.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, headers: auth, payload: { title: 'a title' } })
      await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, headers: { authorization: `Bearer ${await idp.sign({ azp: 'app-reader' })}` }, payload: { messages: [{ role: 'user', text: 'secret words' }] } })
      await app.inject({ method: 'GET', url: `/v1/conversations/${id}`, headers: auth })
      await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations`, headers: auth })
      const audit = lines.filter((line) => line.audit === true)
      t.match(audit, [
        { caller: 'admin', action: 'conversation.patch', conversationId: id, tenantId: 'contoso', outcome: 'done', statusCode: 200, level: 30 },
        { caller: 'reader', action: 'messages.append', conversationId: id, outcome: 'refused', statusCode: 403 },
        { caller: 'admin', action: 'user.delete-all', userId, deleted: 1, tenantId: 'contoso', outcome: 'done', statusCode: 200 }
      ])
      t.equal(audit.length, 3, 'reads are not audited')
      const all = JSON.stringify(lines)
      t.notOk(all.includes(token), 'no line carries the token')
      t.notOk(all.includes('secret words'), 'nor message text')
    })
  })
}
