// npm run bench:serializers — the cost of one response body with each serialiser, in one
// process and one run, so the ratios hold on a noisy machine.
import { serializerCompiler as zodSerializer } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { serializerCompiler as fastSerializer } from '../dist/src/http/serializer.js'
import { ConversationSchema, ConversationListItemSchema, ConversationSummarySchema } from '../dist/src/schemas.js'
import { conversation } from './fixtures.js'
const now = new Date().toISOString()
const c = { ...conversation('u'), id: 'c-1', tenantId: 'default', status: 'active', createdAt: now, updatedAt: now, expiresAt: now, version: 3, messages: conversation('u').messages.map((m) => ({ ...m, kind: 'text', createdAt: now })) }
const { messages, ...rest } = c
const summaries = { items: Array.from({ length: 50 }, () => ({ ...rest, messageCount: 20 })), nextCursor: null }
const time = (fn, n) => { for (let i = 0; i < 2000; i++) fn(); const t = performance.now(); for (let i = 0; i < n; i++) fn(); return (performance.now() - t) / n * 1000 }
const ctx = (schema) => ({ schema, method: 'GET', url: '/', httpStatus: '200' })
const unionPage = z.strictObject({ items: z.array(z.union([ConversationSchema, ConversationSummarySchema])), nextCursor: z.string().nullable() })
const itemPage = z.strictObject({ items: z.array(ConversationListItemSchema), nextCursor: z.string().nullable() })
const rows = [
  ['GET body (20 messages): zod encode + JSON.stringify', time(zodSerializer(ctx(ConversationSchema)).bind(null, c), 20000)],
  ['GET body (20 messages): fast-json-stringify', time(fastSerializer(ctx(ConversationSchema)).bind(null, c), 20000)],
  ['page of 50 summaries: zod, union items', time(zodSerializer(ctx(unionPage)).bind(null, summaries), 2000)],
  ['page of 50 summaries: fast-json-stringify, union items', time(fastSerializer(ctx(unionPage)).bind(null, summaries), 2000)],
  ['page of 50 summaries: fast-json-stringify, one item schema', time(fastSerializer(ctx(itemPage)).bind(null, summaries), 2000)]
]
for (const [name, us] of rows) console.log(`${us.toFixed(1).padStart(8)} µs  ${name}`)
