import fc from 'fast-check'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { redisEnv } from './helpers/backends.js'
import { startRedis } from './helpers/redis-server.js'

// Model-based test: random sequences of operations (on conversations, their messages and
// their workflow state) run against the memory backend and the Redis backend must give the
// same observable results (status codes and bodies, apart from timestamps, which depend on
// when each backend ran, and cursors, which name each backend's own incarnation).

const server = await startRedis()
t.teardown(() => server.close())

const ids = ['a', 'b', 'c']
const users = ['u1', 'u2']
const messageIds = ['m1', 'm2', 'm3', 'm4']

type Request = { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object, body?: string, headers?: Record<string, string> }

// ETags are opaque and differ between backends (they name a random incarnation), so a
// request names a tag by role, and each backend's run sends the tag it was given: the
// current one, an older one (from before a write, or from before a delete and re-create),
// or a bare version, which never matches.
type TagRole = 'current' | 'older' | 'bare'
const ifMatch = fc.option(fc.constantFrom<TagRole | '*'>('current', 'older', 'bare', '*').map((role) => ({ 'if-match': role })), { nil: undefined })
const id = fc.constantFrom(...ids)
const user = fc.constantFrom(...users)
const messages = fc.uniqueArray(fc.constantFrom(...messageIds), { minLength: 1, maxLength: 3 })
  .map((list) => list.map((messageId) => ({ id: messageId, role: 'user', text: messageId })))

const request: fc.Arbitrary<Request> = fc.oneof(
  fc.record({ id, user }).map(({ id, user }) => ({ method: 'POST' as const, url: '/v1/conversations', payload: { id, userId: user } })),
  fc.record({ id, user, title: fc.string({ maxLength: 5 }), messages, headers: ifMatch }).map(({ id, user, title, messages, headers }) =>
    ({ method: 'PUT' as const, url: `/v1/conversations/${id}`, payload: { userId: user, title, messages }, headers: headers ?? {} })),
  fc.record({ id, patch: fc.constantFrom({ title: 'x' }, { title: null }, { status: 'completed' }, { metadata: { k: 1 } }, { metadata: { k: null } }), headers: ifMatch })
    .map(({ id, patch, headers }) => ({ method: 'PATCH' as const, url: `/v1/conversations/${id}`, payload: patch, headers: headers ?? {} })),
  fc.record({ id, messages, headers: ifMatch }).map(({ id, messages, headers }) =>
    ({ method: 'POST' as const, url: `/v1/conversations/${id}/messages`, payload: { messages }, headers: headers ?? {} })),
  fc.record({ id, headers: ifMatch }).map(({ id, headers }) => ({ method: 'DELETE' as const, url: `/v1/conversations/${id}`, headers: headers ?? {} })),
  id.map((id) => ({ method: 'GET' as const, url: `/v1/conversations/${id}` })),
  fc.record({ user, view: fc.constantFrom('full', 'summary') }).map(({ user, view }) => ({ method: 'GET' as const, url: `/v1/users/${user}/conversations?view=${view}` })),
  user.map((user) => ({ method: 'DELETE' as const, url: `/v1/users/${user}/conversations` })),
  fc.record({ id, step: fc.constantFrom('s1', 's2') }).map(({ id, step }) =>
    ({ method: 'PUT' as const, url: `/v1/conversations/${id}/workflow-state`, payload: { step, turnCount: 1, status: 'active' } })),
  id.map((id) => ({ method: 'GET' as const, url: `/v1/conversations/${id}/workflow-state` })),
  fc.record({ id, query: fc.constantFrom('', '?lastMessages=2', '?lastMessages=0', '?view=summary') })
    .map(({ id, query }) => ({ method: 'GET' as const, url: `/v1/conversations/${id}${query}` })),
  fc.record({ id, query: fc.constantFrom('?limit=2', '?limit=2&order=desc', '?order=desc&maxTokens=2', '?order=desc&maxTokens=100&limit=3') })
    .map(({ id, query }) => ({ method: 'GET' as const, url: `/v1/conversations/${id}/messages${query}` })),
  fc.record({ id, message: fc.constantFrom(...messageIds) })
    .map(({ id, message }) => ({ method: 'GET' as const, url: `/v1/conversations/${id}/messages/${message}` })),
  fc.record({ id, message: fc.constantFrom(...messageIds), patch: fc.constantFrom({ text: 'edited' }, { metadata: { k: 1 } }, { text: null }), headers: ifMatch })
    .map(({ id, message, patch, headers }) => ({ method: 'PATCH' as const, url: `/v1/conversations/${id}/messages/${message}`, payload: patch, headers: headers ?? {} })),
  fc.record({ id, message: fc.constantFrom(...messageIds), headers: ifMatch })
    .map(({ id, message, headers }) => ({ method: 'DELETE' as const, url: `/v1/conversations/${id}/messages/${message}`, headers: headers ?? {} })),
  fc.record({ id, messages, query: fc.constantFrom('?window=100', '?lastMessages=2') })
    .map(({ id, messages, query }) => ({ method: 'POST' as const, url: `/v1/conversations/${id}/messages${query}`, payload: { messages } })),
  fc.record({ id, message: fc.constantFrom(...messageIds), headers: ifMatch })
    .map(({ id, message, headers }) => ({ method: 'DELETE' as const, url: `/v1/conversations/${id}/messages?after=${message}`, headers: headers ?? {} })),
  fc.record({ id, target: fc.constantFrom(...ids, 'd'), message: fc.option(fc.constantFrom(...messageIds), { nil: undefined }), user: fc.option(user, { nil: undefined }) })
    .map(({ id, target, message, user }) => ({
      method: 'POST' as const, url: `/v1/conversations/${id}/fork`, payload: { id: target, ...(message === undefined ? {} : { messageId: message }), ...(user === undefined ? {} : { userId: user }) }
    })),
  user.map((user) => ({ method: 'GET' as const, url: `/v1/users/${user}/export` })),
  fc.record({ user, lines: fc.array(fc.record({ id: fc.constantFrom(...ids, 'd'), owner: user, messages }), { maxLength: 3 }), mode: fc.constantFrom('', '?mode=replace') })
    .map(({ user, lines, mode }) => ({
      method: 'POST' as const,
      url: `/v1/users/${user}/import${mode}`,
      headers: { 'content-type': 'application/x-ndjson' },
      body: lines.map(({ id, owner, messages }) => JSON.stringify({ type: 'conversation', conversation: { id, userId: owner, messages } })).join('\n')
    }))
)

const TIMESTAMPS = new Set(['createdAt', 'updatedAt', 'expiresAt'])
const cursorPresence = (key: string, value: unknown): unknown => key === 'nextCursor' ? value !== null : value

const withoutTimestamps = (json: string): Record<string, unknown> =>
  JSON.parse(json, (key, value: unknown) => TIMESTAMPS.has(key) ? undefined : cursorPresence(key, value)) as Record<string, unknown>

/** The observable result, without timestamps; lists are compared as sets (ties in time may order differently). */
function observe (statusCode: number, body: string): unknown {
  if (body === '') return { statusCode }
  // An export: its lines, in id order for the same reason.
  if (body.startsWith('{"type":')) return { statusCode, lines: body.trim().split('\n').map(withoutTimestamps).map((line) => JSON.stringify(line)).sort() }
  const parsed = withoutTimestamps(body)
  // Conversation lists (their items have a userId) may order ties in time differently;
  // message pages must agree to the order.
  if (Array.isArray(parsed.items) && (parsed.items as Array<{ userId?: string }>)[0]?.userId !== undefined) {
    parsed.items = (parsed.items as Array<{ id: string }>).sort((x, y) => x.id.localeCompare(y.id))
  }
  return { statusCode, body: parsed }
}

/** The ETags one backend has answered, per conversation, in order. */
class TagBook {
  readonly #seen = new Map<string, string[]>()

  async send (app: FastifyInstance, req: Request): Promise<LightMyRequestResponse> {
    // A fork's tags are the new conversation's.
    const forked = req.url.endsWith('/fork') ? (req.payload as { id: string }).id : undefined
    const id = forked ?? /^\/v1\/conversations\/([^/?]+)/.exec(req.url)?.[1] ?? (req.payload as { id?: string } | undefined)?.id
    const role = req.headers?.['if-match'] as TagRole | '*' | undefined
    const headers = role === undefined || role === '*' ? req.headers : { 'if-match': this.#tag(id ?? '', role) }
    const { body, ...rest } = req
    const response = await app.inject({ ...rest, ...(body === undefined ? {} : { payload: body }), ...(headers === undefined ? {} : { headers }) })
    const etag = response.headers.etag
    if (typeof etag === 'string' && id !== undefined && !req.url.endsWith('/workflow-state')) {
      this.#seen.set(id, [...this.#seen.get(id) ?? [], etag])
    }
    return response
  }

  #tag (id: string, role: TagRole): string {
    const seen = this.#seen.get(id) ?? []
    if (role === 'bare') return '"1"'
    return (role === 'current' ? seen.at(-1) : seen.at(-2)) ?? '"none.0"'
  }
}

let run = 0
async function fresh (env: Record<string, string>): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig({ ...env }), { logger: false })
  await app.ready()
  return app
}

t.test('memory and Redis give the same results for any sequence of operations', { timeout: 300_000 }, async (t) => {
  // Every sequence starts from the same three conversations, so most operations hit one.
  const setup: Request[] = ids.map((id, i) => ({
    method: 'POST', url: '/v1/conversations', payload: { id, userId: users[i % 2], messages: [{ id: 'm1', role: 'user' }] }
  }))
  let succeeded = 0
  await fc.assert(fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 30, size: 'max' }), async (random) => {
    const requests = [...setup, ...random]
    run++
    const memory = await fresh({})
    const redis = await fresh({ ...redisEnv(server), REDIS_KEY_PREFIX: `model-${process.pid}-${run}:` })
    try {
      const memoryTags = new TagBook()
      const redisTags = new TagBook()
      for (const [step, req] of requests.entries()) {
        const [fromMemory, fromRedis] = [await memoryTags.send(memory, req), await redisTags.send(redis, req)]
        const expected = observe(fromMemory.statusCode, fromMemory.body)
        const actual = observe(fromRedis.statusCode, fromRedis.body)
        if (fromMemory.statusCode < 300) succeeded++
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          throw new Error(`step ${step} ${req.method} ${req.url}: memory ${JSON.stringify(expected)} but redis ${JSON.stringify(actual)}`)
        }
      }
    } finally {
      await Promise.all([memory.close(), redis.close()])
    }
  }), { numRuns: 60 })
  t.ok(succeeded > 60 * 5, `60 random sequences agreed, ${succeeded} successful requests among them`)
})
