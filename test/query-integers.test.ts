import t from 'tap'
import { memoryBackend } from './helpers/backends.js'

// A numeric query parameter is a decimal whole number or a 400: `?lastMessages=` once read
// as 0. The parameters are taken from the OpenAPI document, so a new one is checked too.

type Json = Record<string, any>

// What each route needs besides the parameter under test to be a valid request.
const CONTEXT: Record<string, string> = { maxTokens: 'order=desc&' }

t.test('every numeric query parameter refuses empty, blank and hexadecimal values with 400, and takes decimal ones', async (t) => {
  const app = await memoryBackend.build(t)
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: 'q1', userId: 'u1', messages: [{ id: 'm1', role: 'user', text: 'hi' }] } })
  t.equal(created.statusCode, 201)
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  const checked: string[] = []
  for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, Json>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      const numeric = (operation.parameters ?? []).filter((parameter: Json) => parameter.in === 'query' && parameter.schema?.type === 'integer')
      for (const { name, schema } of numeric) {
        const route = path.replace('{id}', 'q1').replace('{userId}', 'u1').replace('{messageId}', 'm1')
        const request = (value: string) => app.inject({
          method: method.toUpperCase() as 'GET' | 'POST',
          url: `${route}?${method === 'get' ? CONTEXT[name] ?? '' : ''}${name}=${value}`,
          ...(method === 'post' ? { payload: { messages: [{ role: 'user', text: 'hi' }] } } : {})
        })
        for (const value of ['', '%20', '%20%20', '0x10', '1e1', '+1', '16.0', '-0']) {
          const response = await request(value)
          t.equal(response.statusCode, 400, `${method.toUpperCase()} ${path} ${name}=${decodeURIComponent(value)}: 400`)
          t.equal(response.json().code, 'FST_ERR_VALIDATION')
          t.match(response.json().message, name, 'the message names the parameter')
        }
        const decimal = String(Math.max(schema.minimum ?? 0, 16))
        t.equal((await request(decimal)).statusCode, method === 'post' ? 201 : 200, `${method.toUpperCase()} ${path} ${name}=${decimal}: accepted`)
        checked.push(`${method.toUpperCase()} ${path} ${name}`)
      }
    }
  }
  t.same(checked.sort(), [
    'GET /v1/conversations/{id} lastMessages',
    'GET /v1/conversations/{id}/messages limit',
    'GET /v1/conversations/{id}/messages maxTokens',
    'GET /v1/users/{userId}/conversations limit',
    'POST /v1/conversations/{id}/messages lastMessages',
    'POST /v1/conversations/{id}/messages window'
  ], 'every numeric query parameter was checked')
})

t.test('lastMessages=0 still reads no messages, as the number it is', async (t) => {
  const app = await memoryBackend.build(t)
  await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: 'q2', userId: 'u1', messages: [{ role: 'user', text: 'hi' }] } })
  const response = await app.inject({ method: 'GET', url: '/v1/conversations/q2?lastMessages=0' })
  t.equal(response.statusCode, 200)
  t.same(response.json().messages, [])
  t.equal(response.json().messageCount, 1)
})
