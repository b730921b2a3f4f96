import { Ajv2020 } from 'ajv/dist/2020.js'
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import type { ConversationStore } from '../src/store/types.js'
import { build } from './helpers/build.js'
import { countTokens } from './helpers/tokens.js'

// Every answer matches the OpenAPI document, under pressure too: each route's 503 while the
// instance sheds load, and its 500 when the code has a bug, validated against the schema
// the document gives for that route and status.

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>
  parameters?: Array<{ in: string, name: string, required?: boolean }>
}
type Document = { paths: Record<string, Record<string, Operation>>, components: object }

const bodies: Record<string, unknown> = {
  'POST /v1/conversations': { userId: 'u1' },
  'PUT /v1/conversations/{id}': { userId: 'u1' },
  'PATCH /v1/conversations/{id}': { title: 'x' },
  'POST /v1/conversations/{id}/messages': { messages: [{ role: 'user' }] },
  'PUT /v1/conversations/{id}/workflow-state': { step: 's', turnCount: 0, status: 'active' },
  'PATCH /v1/conversations/{id}/messages/{messageId}': { text: 'x' },
  'POST /v1/conversations/{id}/fork': {},
  'POST /v1/conversations/{id}/messages/{messageId}/deltas': { seq: 1, text: 'x' },
  'POST /v1/users/{userId}/import': '{"type":"conversation","conversation":{"id":"c1","userId":"u1"}}\n'
}

/** The body of a route's request, and its type: JSON, or ndjson for an import's lines. */
function payloadOf (route: string): { payload?: object | string, headers?: Record<string, string> } {
  const body = bodies[route]
  if (body === undefined) return {}
  return typeof body === 'string' ? { payload: body, headers: { 'content-type': 'application/x-ndjson' } } : { payload: body as object }
}

function operations (document: Document): Array<{ route: string, method: string, url: string, operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({
    route: `${method.toUpperCase()} ${path}`,
    method: method.toUpperCase(),
    url: path.replace('{id}', 'c1').replace('{userId}', 'u1').replace('{messageId}', 'm1') + requiredQuery(operation),
    operation
  })))
}

/** The required query parameters of an operation (a message id, such as rewind's `after`), so that it gets past validation. */
function requiredQuery ({ parameters = [] }: Operation): string {
  const required = parameters.filter((parameter) => parameter.in === 'query' && parameter.required === true)
  return required.length === 0 ? '' : `?${required.map((parameter) => `${parameter.name}=m1`).join('&')}`
}

/** Checks one answer against the schema the document gives for its route and status. */
function conforms (t: Test, document: Document, route: string, operation: Operation, status: number, body: unknown): void {
  const schema = operation.responses[String(status)]?.content?.['application/json']?.schema
  if (schema === undefined) {
    t.fail(`${route}: ${status} is not in the document`)
    return
  }
  // $refs point at #/components, so the components travel with the schema.
  const validate = new Ajv2020({ strict: false }).compile({ ...schema, components: document.components })
  t.ok(validate(body), `${route}: its ${status} body matches the document`, { errors: validate.errors, body })
}

async function documentOf (app: FastifyInstance): Promise<Document> {
  return app.swagger() as unknown as Document
}

t.test('while shedding load, every route answers a documented 503 with Retry-After (liveness and / keep serving)', async (t) => {
  // Any heap is over one byte, so the instance sheds from its first sample on.
  const app = await build(t, { MAX_HEAP_USED_BYTES: '1', RETRY_AFTER_SECONDS: '2' })
  let shedding = false
  for (let i = 0; i < 50 && !shedding; i++) {
    shedding = (await app.inject({ method: 'GET', url: '/v1/conversations/c1' })).statusCode === 503
    if (!shedding) await sleep(100)
  }
  t.ok(shedding, 'the instance sheds load')
  const document = await documentOf(app)
  for (const { route, method, url, operation } of operations(document)) {
    const response = await app.inject({ method: method as 'GET', url, ...payloadOf(route) })
    const keepsServing = route === 'GET /health/live' || route === 'GET /'
    t.equal(response.statusCode, keepsServing ? 200 : 503, `${route} answers ${keepsServing ? 200 : 503}`)
    if (!keepsServing) t.equal(response.headers['retry-after'], '2', `${route} says when to retry`)
    conforms(t, document, route, operation, response.statusCode, response.json())
  }
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.match(health.json(), { status: 'unavailable', reason: 'overloaded' }, 'the probe hears why')
})

t.test('when the code has a bug, every route that reaches the store answers a documented 500, and /health a documented 503', async (t) => {
  // A memory store whose every operation fails as a bug would: a plain Error, no status.
  const store = new Proxy(new MemoryConversationStore({ maxConversations: 10, limits: { ttlSeconds: 60, maxMessagesPerConversation: 10 }, countTokens }), {
    get (target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function' || property === 'close' || property === 'stats') return typeof value === 'function' ? value.bind(target) : value
      return async () => { throw new TypeError("Cannot read properties of undefined (reading 'secret')") }
    }
  }) as ConversationStore
  const app = await build(t, {}, { store })
  const document = await documentOf(app)
  for (const { route, method, url, operation } of operations(document)) {
    if (!url.startsWith('/v1/') && url !== '/health') continue
    const response = await app.inject({ method: method as 'GET', url, ...payloadOf(route) })
    const expected = url === '/health' ? 503 : 500
    t.equal(response.statusCode, expected, `${route} answers ${expected}`)
    t.notMatch(response.body, /secret|TypeError|\bat .*:\d+/, `${route} says nothing of the bug`)
    conforms(t, document, route, operation, response.statusCode, response.json())
  }
})
