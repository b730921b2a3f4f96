import { getHeapStatistics } from 'node:v8'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

// Run by test/store/memory/bound.test.ts in a child process with a small heap: it writes four
// times MEMORY_MAX_BYTES of large conversations into the memory backend, with the default
// settings, and reports what every answer was.

const config = loadConfig({ LOG_LEVEL: 'silent' })
const app = await buildApp(config, { logger: false })
await app.ready()
const maxBytes = app.conversationStore.stats().maxBytes as number

const statuses: Record<string, number> = {}
const count = (status: number): void => { statuses[status] = (statuses[status] ?? 0) + 1 }
const text = 'x'.repeat(60_000)
const messages = Array.from({ length: 8 }, (_, index) => ({ id: `m${index}`, role: 'user', text }))
const perConversation = JSON.stringify(messages).length
let written = 0
let created = 0
let peakHeapUsed = 0
while (written < maxBytes * 4) {
  const id = `big-${created++}`
  const response = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: `user-${created % 20}`, messages } })
  count(response.statusCode)
  written += perConversation
  count((await app.inject({ method: 'GET', url: `/v1/conversations/${id}` })).statusCode)
  if (created % 25 === 0) {
    count((await app.inject({ method: 'GET', url: '/health' })).statusCode)
    count((await app.inject({ method: 'GET', url: `/v1/users/user-${created % 20}/conversations?view=summary` })).statusCode)
    peakHeapUsed = Math.max(peakHeapUsed, process.memoryUsage().heapUsed)
  }
}
const last = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId: 'last', messages } })
const read = await app.inject({ method: 'GET', url: `/v1/conversations/${String(last.json().id)}` })
const health = await app.inject({ method: 'GET', url: '/health' })
process.stdout.write(JSON.stringify({
  statuses,
  last: [last.statusCode, read.statusCode, health.statusCode],
  written,
  created,
  heapLimit: getHeapStatistics().heap_size_limit,
  peakHeapUsed,
  ...app.conversationStore.stats()
}))
await app.close()
