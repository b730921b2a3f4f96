import t from 'tap'
import { MemoryConversationStore } from '../../../src/store/memory/store.js'
import { countTokens } from '../../helpers/tokens.js'

const limits = { ttlSeconds: 60, maxMessagesPerConversation: 100 }
const fields = (userId: string) => ({ userId, tenantId: 'default', status: 'active' as const, messages: [] })

t.test('evicts the least recently used conversation and drops it from its user list', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 3, limits, countTokens })
  for (const id of ['a', 'b', 'c']) await store.create(id, fields('u1'))
  await store.get('a') // a is now the most recently used
  await store.create('d', fields('u2'))
  t.match(store.stats(), { conversations: 3, evictions: 1 })
  t.equal(await store.get('b'), undefined)
  const page = await store.listByUser('u1', { limit: 10, view: 'summary' })
  t.same(page.items.map((item) => item.id).sort(), ['a', 'c'])
  await store.close()
  t.equal(store.stats().conversations, 0)
})

t.test('updatedAt never goes backwards when the wall clock does', async (t) => {
  let now = Date.parse('2026-11-26T10:00:00.000Z')
  const store = new MemoryConversationStore({ maxConversations: 10, limits, countTokens, clock: () => now })
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
  const store = new MemoryConversationStore({ maxConversations: 10, limits, countTokens, clock: () => now })
  await store.create('a', fields('u1'))
  await store.putWorkflowState('a', { step: 's', turnCount: 0, status: 'active' }, {})
  now += 59_999
  t.ok(await store.get('a'))
  t.equal((await store.getWorkflowState('a')).step, 's')
  now += 1
  t.equal(await store.get('a'), undefined)
  t.same(await store.listByUser('u1', { limit: 10, view: 'full' }), { items: [], nextCursor: null, position: '0-0' }, 'a user left without conversations has no feed')
  t.equal(store.stats().conversations, 0, 'an expired conversation is removed when seen')
})

t.test('returned conversations are copies', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, limits, countTokens })
  const created = await store.create('a', fields('u1'))
  created.messages.push({ id: 'x', role: 'user', kind: 'text', createdAt: created.createdAt, status: 'completed' })
  t.equal((await store.get('a'))?.messages?.length, 0)
})

t.test('ping reports the size', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, limits, countTokens })
  t.match(await store.ping(), { latencyMs: 0, conversations: 0 })
})

t.test('MEMORY_MAX_BYTES: the least recently used conversations leave once the stored size passes the bound', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 1000, maxBytes: 50_000, limits, countTokens })
  const big = (id: string) => ({ ...fields('u1'), messages: [{ id, role: 'user' as const, kind: 'text' as const, text: 'x'.repeat(10_000) }] })
  for (const id of ['a', 'b', 'c', 'd']) await store.create(id, big(id))
  await store.get('a') // a is now the most recently used
  await store.create('e', big('e'))
  await store.create('f', big('f'))
  const { bytes = 0, conversations, evictions } = store.stats()
  t.ok(bytes <= 50_000, `stored size ${bytes} is within the bound`)
  t.ok(bytes > 40_000, 'and counts the messages')
  t.equal(conversations, 4)
  t.equal(evictions, 2)
  t.equal(await store.get('b'), undefined, 'the least recently used left first')
  t.ok(await store.get('a'))
  const page = await store.listByUser('u1', { limit: 10, view: 'summary' })
  t.same(page.items.map((item) => item.id).sort(), ['a', 'd', 'e', 'f'], 'the user list follows the evictions')
})

t.test('a write that would make one conversation larger than the whole bound is 413 and changes nothing', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, maxBytes: 20_000, limits, countTokens })
  const text = (n: number) => 'x'.repeat(n)
  await t.rejects(store.create('a', { ...fields('u1'), messages: [{ role: 'user', kind: 'text', text: text(30_000) }] }), { statusCode: 413, code: 'CONVERSATION_TOO_LARGE' })
  t.equal(await store.get('a'), undefined)
  await store.create('a', { ...fields('u1'), messages: [{ id: 'm1', role: 'user', kind: 'text', text: text(9000) }] })
  await t.rejects(store.appendMessages('a', [{ id: 'm2', role: 'user', kind: 'text', text: text(12_000) }], {}), { statusCode: 413, code: 'CONVERSATION_TOO_LARGE' })
  await t.rejects(store.patch('a', { metadata: { big: text(12_000) } }, {}), { statusCode: 413, code: 'CONVERSATION_TOO_LARGE' })
  await t.rejects(store.putWorkflowState('a', { step: 's', turnCount: 0, status: 'active', collectedData: { big: text(12_000) } }, {}), { statusCode: 413, code: 'CONVERSATION_TOO_LARGE' })
  const stored = await store.get('a')
  t.equal(stored?.version, 1, 'no write landed')
  t.same(stored?.messages?.map((message) => message.id), ['m1'])
  await t.rejects(store.getWorkflowState('a'), { code: 'WORKFLOW_STATE_NOT_FOUND' })
  const appended = await store.appendMessages('a', [{ id: 'm2', role: 'user', kind: 'text', text: text(5000) }], {})
  t.equal(appended.appended, 1, 'a write that fits still lands')
  t.ok((store.stats().bytes ?? 0) > 14_000, 'the append counted its bytes')
})

t.test('workflow state counts towards the stored size', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, maxBytes: 100_000, limits, countTokens })
  await store.create('a', fields('u1'))
  const before = store.stats().bytes ?? 0
  await store.putWorkflowState('a', { step: 's', turnCount: 0, status: 'active', collectedData: { big: 'x'.repeat(5000) } }, {})
  t.ok((store.stats().bytes ?? 0) >= before + 5000)
  await store.deleteWorkflowState('a', {})
  t.equal(store.stats().bytes, before, 'and leaves it when deleted')
})

t.test('a user\'s feed that only a refused or departed follower would keep is not kept', async (t) => {
  const store = new MemoryConversationStore({ maxConversations: 10, limits, countTokens })
  const position = async (userId: string): Promise<string> => (await store.listByUser(userId, { limit: 1, view: 'summary' })).position
  await t.rejects(store.followUser('nobody', 'not-a-position', () => {}), { message: /position/ })
  t.equal(await position('nobody'), '0-0', 'a refused position leaves no feed behind')
  const following = await store.followUser('watched', undefined, () => {})
  const kept = await position('watched')
  t.not(kept, '0-0', 'a follower keeps its user\'s feed')
  following.close()
  t.equal(await position('watched'), '0-0', 'and the last one to leave a user without conversations drops it')
  const events: string[] = []
  const resumed = await store.followUser('watched', kept, (event) => { events.push(event?.type ?? 'end') })
  resumed.close()
  t.same(events, ['reset'], 'a position of the dropped feed gets a reset, not a 400')
  t.equal((await store.listByUser('watched', { limit: 1, view: 'summary' }, { tenants: '*', userId: 'someone' })).position, '0-0', 'another user\'s delegated token learns nothing of the feed')
})
