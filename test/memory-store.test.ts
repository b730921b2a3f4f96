import t from 'tap'
import { MemoryConversationStore } from '../src/store/memory-store.js'

const limits = { ttlSeconds: 60, maxMessagesPerConversation: 100 }
const fields = (userId: string) => ({ userId, tenantId: 'default', status: 'active' as const, messages: [] })

t.test('evicts the least recently used conversation and drops it from its user list', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 3, limits })
  for (const id of ['a', 'b', 'c']) await store.create(id, fields('u1'))
  await store.get('a') // a is now the most recently used
  await store.create('d', fields('u2'))
  t.same(store.stats(), { conversations: 3, evictions: 1 })
  t.equal(await store.get('b'), undefined)
  const page = await store.listByUser('u1', { limit: 10, view: 'summary' })
  t.same(page.items.map((item) => item.id).sort(), ['a', 'c'])
  await store.close()
  t.equal(store.stats().conversations, 0)
})

t.test('updatedAt never goes backwards when the wall clock does', async (t) => {
  let now = Date.parse('2026-11-26T10:00:00.000Z')
  const store = new MemoryConversationStore({ maxConversations: 10, limits, clock: () => now })
  const created = await store.create('a', fields('u1'))
  now -= 60_000
  const patched = await store.patch('a', { title: 'later' }, {})
  t.equal(patched.updatedAt, created.updatedAt)
  const { conversation } = await store.put('a', fields('u1'), {})
  t.equal(conversation.updatedAt, created.updatedAt)
  await store.appendMessages('a', [{ role: 'user', kind: 'text' }], {})
  t.equal((await store.get('a'))?.updatedAt, created.updatedAt)
})

t.test('expiry follows the injected clock', async (t) => {
  let now = Date.parse('2026-11-26T10:00:00.000Z')
  const store = new MemoryConversationStore({ maxConversations: 10, limits, clock: () => now })
  await store.create('a', fields('u1'))
  await store.putWorkflowState('a', { step: 's', turnCount: 0, status: 'active' }, {})
  now += 59_999
  t.ok(await store.get('a'))
  t.equal((await store.getWorkflowState('a')).step, 's')
  now += 1
  t.equal(await store.get('a'), undefined)
  t.same(await store.listByUser('u1', { limit: 10, view: 'full' }), { items: [], nextCursor: null })
  t.equal(store.stats().conversations, 0, 'an expired conversation is removed when seen')
})

t.test('returned conversations are copies', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, limits })
  const created = await store.create('a', fields('u1'))
  created.messages.push({ id: 'x', role: 'user', kind: 'text', createdAt: created.createdAt })
  t.equal((await store.get('a'))?.messages.length, 0)
})

t.test('ping reports the size', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, limits })
  t.match(await store.ping(), { latencyMs: 0, conversations: 0 })
})
