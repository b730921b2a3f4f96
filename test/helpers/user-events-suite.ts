import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'
import { dataOf, openFeed } from './event-feed.js'

// Users' feeds (issue 20): GET /v1/users/:userId/events over a real socket. On Redis the
// follower listens to a second instance and the writes go through the first. Run once per
// backend.

let sequence = 0
const unique = (name: string): string => `${name}-${process.pid}-${++sequence}-${Date.now().toString(36)}`

async function instances (backend: Backend, t: Parameters<Backend['build']>[0], extra: Record<string, string> = {}): Promise<{ writer: FastifyInstance, feedUrl: (userId: string, query?: string) => string }> {
  const writer = await backend.build(t, extra)
  const follower = backend.name === 'memory' ? writer : await backend.build(t, extra)
  const address = await follower.listen({ port: 0, host: '127.0.0.1' })
  return { writer, feedUrl: (userId, query = '') => `${address}/v1/users/${userId}/events${query}` }
}

const listPosition = async (app: FastifyInstance, userId: string): Promise<string> =>
  (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations` })).headers['last-event-id'] as string

export function userEventsSuite (backend: Backend): void {
  t.test(`[${backend.name}] users' feeds`, async (t) => {
    const { writer, feedUrl } = await instances(backend, t)
    const write = async (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object): Promise<number> =>
      (await writer.inject({ method, url, ...(payload === undefined ? {} : { payload }) })).statusCode

    t.test('list, then follow from its Last-Event-ID: every write of the user\'s conversations after it, deltas excepted, on another instance', async (t) => {
      const user = unique('sidebar')
      const before = unique('c')
      t.equal(await write('POST', '/v1/conversations', { id: before, userId: user }), 201)
      const position = await listPosition(writer, user)
      t.match(position, /-1$/, 'the list names the feed\'s newest event')
      const feed = await openFeed(feedUrl(user), { 'last-event-id': position })
      t.equal(feed.status, 200)
      const id = unique('c')
      const other = unique('c')
      t.equal(await write('POST', '/v1/conversations', { id, userId: user, title: 'First' }), 201)
      t.equal(await write('POST', `/v1/conversations/${id}/messages`, { messages: [{ id: 'r', role: 'assistant', status: 'in_progress' }] }), 201)
      t.equal(await write('POST', `/v1/conversations/${id}/messages/r/deltas`, { seq: 1, text: 'Hi' }), 200)
      t.equal(await write('PATCH', `/v1/conversations/${id}/messages/r`, { status: 'completed' }), 200)
      t.equal(await write('PATCH', `/v1/conversations/${id}`, { title: 'Renamed' }), 200)
      t.equal(await write('POST', '/v1/conversations', { id: other, userId: unique('someone-else') }), 201)
      t.ok(await write('DELETE', `/v1/conversations/${id}/messages/r`) < 300)
      t.ok(await write('PUT', `/v1/conversations/${id}/workflow-state`, { step: 's', turnCount: 0, status: 'active' }) < 300)
      t.ok(await write('DELETE', `/v1/conversations/${before}`) < 300)
      const events = await feed.until(6)
      // Nothing more arrives: a change of another user, a delta and a workflow state are not in this feed.
      t.equal(await write('PATCH', `/v1/conversations/${id}`, { title: 'Last' }), 200)
      await feed.until(7)
      feed.close()
      t.same(events.map((event) => event.event), [
        'conversation.created', 'conversation.updated', 'conversation.updated', 'conversation.updated', 'conversation.updated', 'conversation.deleted',
        'conversation.updated'
      ], 'one event per write, the stream goes on past a deletion')
      const data = dataOf(events)
      t.same(data.map((event) => event.conversationId), [id, id, id, id, id, before, id])
      t.same(data.map((event) => event.version), [1, 2, 4, 5, 6, 1, 7], 'each names the version after its write (the delta, version 3, is not sent)')
      t.match(data[0], { conversation: { id, userId: user, title: 'First', messageCount: 0 } })
      t.match(data[3], { conversation: { title: 'Renamed', messageCount: 1 } })
      t.notOk('messages' in (data[1]?.conversation ?? {}), 'the conversation without its messages')
      t.same(data[5], { type: 'conversation.deleted', conversationId: before, version: 1, tenantId: 'default' })
      t.equal(new Set(events.map((event) => event.id)).size, events.length, 'ids are distinct')
    })

    t.test('a follower that resumes from an id it got misses nothing and sees nothing twice; without a position, from the next write', async (t) => {
      const user = unique('resume')
      const first = await openFeed(feedUrl(user))
      for (let i = 0; i < 3; i++) t.equal(await write('POST', '/v1/conversations', { id: unique(`r${i}`), userId: user, title: `${i}` }), 201)
      const seen = await first.until(3)
      first.close()
      for (let i = 3; i < 5; i++) t.equal(await write('POST', '/v1/conversations', { id: unique(`r${i}`), userId: user, title: `${i}` }), 201)
      const resumed = await openFeed(feedUrl(user, `?after=${encodeURIComponent(seen[0]?.id as string)}`))
      const rest = await resumed.until(4)
      resumed.close()
      t.same(dataOf(rest).map((event) => event.conversation.title), ['1', '2', '3', '4'])
    })

    t.test('a user without conversations: the list names the feed\'s start, and a follower from it gets the first write', async (t) => {
      const user = unique('new')
      const position = await listPosition(writer, user)
      t.ok(position, 'a position even before the feed exists')
      const id = unique('c')
      t.equal(await write('POST', '/v1/conversations', { id, userId: user }), 201)
      const feed = await openFeed(feedUrl(user), { 'last-event-id': position })
      const events = await feed.until(1)
      feed.close()
      t.same(events.map((event) => event.event), ['conversation.created'])
      t.equal(dataOf(events)[0]?.conversationId, id)
    })

    t.test('a position the service never gave is 400 with a JSON body', async (t) => {
      const user = unique('bad')
      t.equal(await write('POST', '/v1/conversations', { id: unique('c'), userId: user }), 201)
      const position = await listPosition(writer, user)
      for (const bad of ['nonsense', position.replace(/-1$/, '-99')]) {
        const feed = await openFeed(feedUrl(user), { 'last-event-id': bad })
        t.equal(feed.status, 400, bad)
        t.equal(feed.body?.code, 'FST_ERR_VALIDATION')
      }
    })
  })

  t.test(`[${backend.name}] users' feeds: retention and the per-user cap`, async (t) => {
    const { writer, feedUrl } = await instances(backend, t, { EVENTS_RETAINED: '3', MAX_CONVERSATIONS_PER_USER: '2' })

    t.test('a position older than what is kept gets one reset naming the user, then the live feed', async (t) => {
      const user = unique('old')
      const id = unique('c')
      t.equal((await writer.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: user } })).statusCode, 201)
      const position = await listPosition(writer, user)
      for (let i = 0; i < 4; i++) await writer.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { title: `${i}` } })
      const feed = await openFeed(feedUrl(user), { 'last-event-id': position })
      await feed.until(1)
      await writer.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { title: 'live' } })
      const events = await feed.until(2)
      feed.close()
      t.same(events.map((event) => event.event), ['reset', 'conversation.updated'])
      t.same(dataOf(events)[0], { type: 'reset', userId: user })
      t.match(dataOf(events)[1], { conversation: { title: 'live' } })
      t.equal(events[0]?.id, position.replace(/-1$/, '-5'), 'the reset names the position to go on from')
    })

    t.test('a conversation the per-user cap deletes is a conversation.deleted on its user\'s feed', async (t) => {
      const user = unique('capped')
      const ids = [unique('c'), unique('c'), unique('c')]
      const feed = await openFeed(feedUrl(user))
      for (const id of ids) t.equal((await writer.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: user } })).statusCode, 201)
      // On a cluster the cap's step runs after the create, and again before a list.
      await listPosition(writer, user)
      const events = await feed.until(4)
      feed.close()
      t.same(events.map((event) => `${event.event} ${JSON.parse(event.data).conversationId as string}`).sort(), [
        `conversation.created ${ids[0] as string}`, `conversation.created ${ids[1] as string}`, `conversation.created ${ids[2] as string}`,
        `conversation.deleted ${ids[0] as string}`
      ].sort())
    })
  })
}
