import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { memoryBackend, type Backend } from './backends.js'
import { exportOf, importInto, portable } from './user-data-suite.js'

// Portability: a user's export of 1,000 conversations, imported into the other backend,
// gives the same conversations, messages and workflow states, field by field. Run once per
// Redis backend, in both directions against memory.

type Json = Record<string, any>

const COUNT = 1000

async function seed (app: FastifyInstance, userId: string): Promise<void> {
  for (let from = 0; from < COUNT; from += 50) {
    await Promise.all(Array.from({ length: 50 }, async (_, k) => {
      const i = from + k
      const id = `${userId}-${i}`
      const response = await app.inject({
        method: 'POST',
        url: '/v1/conversations',
        payload: {
          id,
          userId,
          title: `chat ${i}`,
          status: i % 7 === 0 ? 'completed' : 'active',
          ...(i % 5 === 0 ? { ttlSeconds: 3600 + i } : {}),
          ...(i % 4 === 0 ? { metadata: { channel: 'teams', n: i, nested: { deep: [1, 'two', null] } } } : {}),
          messages: Array.from({ length: 1 + (i % 4) }, (_, m) => ({
            id: `m${m}`,
            role: m % 2 === 0 ? 'user' : 'assistant',
            ...(m === 2 ? { kind: 'adaptiveCard', cardJson: { type: 'AdaptiveCard', body: [{ text: `card ${i}` }] }, cardId: `card-${i}` } : { text: `text ${m} of ${i} ✓` })
          }))
        }
      })
      if (response.statusCode !== 201) throw new Error(response.body)
      if (i % 3 === 0) {
        await app.inject({ method: 'PUT', url: `/v1/conversations/${id}/workflow-state`, payload: { step: `step-${i}`, turnCount: i, status: 'active', choices: ['a', 'b'], progress: 0.5 } })
      }
    }))
  }
  // A fork among them, so that forkedFrom travels too.
  await app.inject({ method: 'POST', url: `/v1/conversations/${userId}-3/fork`, payload: { id: `${userId}-fork`, messageId: 'm1' } })
}

const byId = (lines: Json[]): Json[] => lines.map(portable).sort((a, b) => a.conversation.id < b.conversation.id ? -1 : 1)

export function portabilitySuite (backend: Backend): void {
  t.test(`[${backend.name}] an export of ${COUNT} conversations imported into the other backend`, async (t) => {
    const app = await backend.build(t)
    const memory = await memoryBackend.build(t)
    for (const [from, to, direction] of [[app, memory, `${backend.name} to memory`], [memory, app, `memory to ${backend.name}`]] as const) {
      const userId = `portable-${process.pid}-${direction.replaceAll(' ', '-')}`
      await seed(from, userId)
      const exported = await exportOf(from, userId)
      t.equal(exported.end.conversations, COUNT + 1, `${direction}: the export is complete`)
      const body = [...exported.lines, exported.end].map((line) => JSON.stringify(line)).join('\n')
      t.same((await importInto(to, userId, body)).json, { imported: COUNT + 1, skipped: 0, failed: [], failedCount: 0 }, `${direction}: every line imported`)
      const imported = await exportOf(to, userId)
      t.same(byId(imported.lines), byId(exported.lines), `${direction}: the same conversations, messages and workflow states, field by field`)
      t.same(imported.lines.map((line) => line.conversation.id), exported.lines.map((line) => line.conversation.id), `${direction}: in the same list order`)
    }
  })
}
