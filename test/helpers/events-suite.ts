import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Backend } from './backends.js'
import { dataOf, openFeed } from './event-feed.js'

// Event feeds (issue 20): GET /v1/conversations/:id/events over a real socket. On Redis the
// follower listens to a second instance and the changes go through the first, so every
// event crosses instances. Run once per backend.

type Json = Record<string, any>

let sequence = 0
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

/** Two instances on one store (on memory, one instance twice), the second listening on a port. */
async function instances (backend: Backend, t: Parameters<Backend['build']>[0], extra: Record<string, string> = {}): Promise<{ writer: FastifyInstance, feedUrl: (id: string, query?: string) => string }> {
  // The default heartbeat (15 s): a feed must answer its head at once, not with its first write.
  const writer = await backend.build(t, extra)
  const follower = backend.name === 'memory' ? writer : await backend.build(t, extra)
  const address = await follower.listen({ port: 0, host: '127.0.0.1' })
  return { writer, feedUrl: (id, query = '') => `${address}${url(id, '/events')}${query}` }
}

async function conversation (app: FastifyInstance, userId = 'follower'): Promise<{ id: string, position: string }> {
  const id = `feed-${process.pid}-${++sequence}-${Date.now().toString(36)}`
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId, messages: [{ id: 'm0', role: 'user', text: 'hi' }] } })
  if (created.statusCode !== 201) throw new Error(`create failed: ${created.body}`)
  return { id, position: created.headers['last-event-id'] as string }
}

const append = async (app: FastifyInstance, id: string, messages: Json[]): Promise<string> =>
  (await app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages } })).headers['last-event-id'] as string

export function eventsSuite (backend: Backend): void {
  t.test(`[${backend.name}] event feeds`, async (t) => {
    const { writer, feedUrl } = await instances(backend, t)

    t.test('every answer about a conversation names the newest event it reflects', async (t) => {
      const { id, position } = await conversation(writer)
      t.match(position, /\S+-0$/, 'a new conversation has no event yet')
      const appended = await append(writer, id, [{ id: 'a', role: 'user', text: 'one' }, { id: 'b', role: 'assistant', text: 'two' }])
      t.match(appended, /-2$/, 'one event per message')
      const answers = await Promise.all([url(id), url(id, '/messages'), url(id, '/messages/a'), url(id, '?view=summary')]
        .map(async (path) => (await writer.inject({ method: 'GET', url: path })).headers['last-event-id']))
      t.same(answers, [appended, appended, appended, appended], 'reads answer where the feed stands')
      const state = await writer.inject({ method: 'PUT', url: url(id, '/workflow-state'), payload: { step: 's', turnCount: 0, status: 'active' } })
      t.match(state.headers['last-event-id'], /-3$/, 'a workflow-state write is an event of its conversation')
      t.equal((await writer.inject({ method: 'DELETE', url: url(id, '/workflow-state') })).headers['last-event-id'], position.replace(/-0$/, '-4'))
    })

    t.test('read, then follow from its Last-Event-ID: every change after it, in order, once, on another instance', async (t) => {
      const { id, position } = await conversation(writer)
      const feed = await openFeed(feedUrl(id), { 'last-event-id': position })
      t.equal(feed.status, 200)
      t.match(feed.headers.get('content-type'), /text\/event-stream/)
      await append(writer, id, [{ id: 'q', role: 'user', text: 'question' }])
      await append(writer, id, [{ id: 'r', role: 'assistant', status: 'in_progress' }])
      for (const [seq, text] of [[1, 'Hel'], [2, 'lo']] as const) {
        await writer.inject({ method: 'POST', url: url(id, '/messages/r/deltas'), payload: { seq, text } })
      }
      await writer.inject({ method: 'PATCH', url: url(id, '/messages/r'), payload: { status: 'completed' } })
      await writer.inject({ method: 'PATCH', url: url(id), payload: { title: 'Named' } })
      await writer.inject({ method: 'DELETE', url: url(id, '/messages/q') })
      await writer.inject({ method: 'DELETE', url: url(id) })
      await feed.ended
      const events = feed.events
      t.same(events.map((event) => event.event), [
        'message.created', 'message.created', 'message.delta', 'message.delta', 'message.updated', 'conversation.updated', 'message.deleted',
        'conversation.deleted'
      ], 'the server ends the stream after conversation.deleted')
      const data = dataOf(events)
      t.same(data.map((event) => event.version), [2, 3, 4, 5, 6, 7, 8, 8], 'each names the version after its change')
      t.ok(data.every((event, i) => event.type === events[i]?.event && event.conversationId === id))
      t.match(data[0], { message: { id: 'q', text: 'question', status: 'completed' } })
      t.same(data.slice(2, 4).map(({ messageId, seq, text }) => ({ messageId, seq, text })), [{ messageId: 'r', seq: 1, text: 'Hel' }, { messageId: 'r', seq: 2, text: 'lo' }])
      t.match(data[4], { message: { id: 'r', status: 'completed', text: 'Hello' } })
      t.match(data[5], { conversation: { id, title: 'Named', version: 7, messageCount: 3 } })
      t.notOk('messages' in data[5]?.conversation, 'the conversation without its messages')
      t.same(data[6], { type: 'message.deleted', conversationId: id, version: 8, messageId: 'q' })
      t.same(new Set(events.map((event) => event.id)).size, events.length, 'ids are distinct')
    })

    t.test('a follower that resumes from an id it got misses nothing and sees nothing twice', async (t) => {
      const { id } = await conversation(writer)
      const first = await openFeed(feedUrl(id))
      // Without a position, the feed starts with the next change.
      for (let i = 0; i < 3; i++) await append(writer, id, [{ id: `a${i}`, role: 'user', text: `${i}` }])
      const seen = await first.until(3)
      first.close()
      for (let i = 3; i < 6; i++) await append(writer, id, [{ id: `a${i}`, role: 'user', text: `${i}` }])
      const resumed = await openFeed(feedUrl(id, `?after=${encodeURIComponent(seen[1]?.id as string)}`))
      await append(writer, id, [{ id: 'a6', role: 'user', text: '6' }])
      const rest = await resumed.until(5)
      resumed.close()
      t.same(dataOf(rest).map((event) => event.message.id), ['a2', 'a3', 'a4', 'a5', 'a6'], '?after= resumes after that id, then live')
    })

    t.test('a replay of more than 1,000 kept events arrives whole: only a follower that falls behind live events is cut off', async (t) => {
      const { id, position } = await conversation(writer)
      for (let batch = 0; batch < 12; batch++) {
        await append(writer, id, Array.from({ length: 100 }, (_, i) => ({ id: `b${batch}-${i}`, role: 'user', text: 'x' })))
      }
      const feed = await openFeed(feedUrl(id), { 'last-event-id': position })
      const events = await feed.until(1200)
      feed.close()
      t.equal(events.length, 1200)
      t.equal(new Set(events.map((event) => event.id)).size, 1200, 'each once')
      t.equal(dataOf(events).at(-1)?.message.id, 'b11-99', 'in order, to the newest')
    })

    t.test('a position the service never gave, or of another conversation, is 400 with a JSON body', async (t) => {
      const { id } = await conversation(writer)
      const other = await conversation(writer)
      for (const position of ['nonsense', other.position, `${other.position.slice(0, -2)}-99`, `${id}-1`]) {
        const feed = await openFeed(feedUrl(id), { 'last-event-id': position })
        t.equal(feed.status, 400, position)
        t.equal(feed.body?.code, 'FST_ERR_VALIDATION')
      }
      t.equal((await openFeed(feedUrl('no-such-feed'))).status, 404)
    })
  })

  t.test(`[${backend.name}] event feeds: retention, limits, heartbeats and shutdown`, async (t) => {
    const { writer, feedUrl } = await instances(backend, t, { EVENTS_RETAINED: '3', EVENTS_MAX_CONNECTIONS: '2', EVENTS_HEARTBEAT_SECONDS: '1' })

    t.test('a position older than what is kept gets one reset naming the version, then the live feed', async (t) => {
      const { id, position } = await conversation(writer)
      for (let i = 0; i < 5; i++) await append(writer, id, [{ id: `m${i + 1}`, role: 'user', text: 'x' }])
      const feed = await openFeed(feedUrl(id), { 'last-event-id': position })
      await feed.until(1)
      await append(writer, id, [{ id: 'after', role: 'user', text: 'y' }])
      const events = await feed.until(2)
      feed.close()
      t.same(events.map((event) => event.event), ['reset', 'message.created'])
      t.match(dataOf(events)[0], { type: 'reset', conversationId: id, version: 6 })
      t.match(dataOf(events)[1], { version: 7, message: { id: 'after' } })
      t.equal(events[0]?.id, position.replace(/-0$/, '-5'), 'the reset names the position to go on from')
    })

    t.test('past EVENTS_MAX_CONNECTIONS an instance answers 503 with Retry-After; heartbeats keep streams alive', async (t) => {
      const { id } = await conversation(writer)
      const feeds = [await openFeed(feedUrl(id)), await openFeed(feedUrl(id))]
      const refused = await openFeed(feedUrl(id))
      t.equal(refused.status, 503)
      t.equal(refused.body?.code, 'TOO_MANY_FOLLOWERS')
      t.ok(refused.headers.get('retry-after'))
      const start = Date.now()
      while ((feeds[0]?.comments.length ?? 0) === 0 && Date.now() - start < 5000) await new Promise((resolve) => setTimeout(resolve, 50))
      t.ok((feeds[0]?.comments.length ?? 0) > 0, 'a comment line within the heartbeat interval')
      for (const feed of feeds) feed.close()
    })
  })

  t.test(`[${backend.name}] closing an instance ends its event streams`, async (t) => {
    const app = await backend.build(t)
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const { id } = await conversation(app)
    const feed = await openFeed(`${address}${url(id, '/events')}`)
    t.equal(feed.status, 200)
    const started = Date.now()
    await app.close()
    await feed.ended
    t.ok(Date.now() - started < 4500, 'within the shutdown budget')
  })
}
