import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t from 'tap'
import { redisEnv } from '../../helpers/backends.js'
import { build } from '../../helpers/build.js'
import type { EventSourceMessage } from 'eventsource-parser'
import { dataOf, openFeed, type Feed } from '../../helpers/event-feed.js'
import { startRedis } from '../../helpers/redis-server.js'

// Event feeds on Redis under faults and at random: followers on a second instance, over real
// sockets, with Redis restarted under them, and random interleavings of writes, deltas,
// finishes and disconnects, after which each follower must have assembled exactly the
// committed changes, in order, once.

type Json = Record<string, any>

const server = await startRedis()
t.teardown(() => server.close())
// Load shedding off: on a busy CI machine it may answer a write 503 before it reaches the store, which is not what this file tests.
const env = { ...redisEnv(server), EVENTS_HEARTBEAT_SECONDS: '1', REDIS_TIMEOUT_MS: '500', MAX_EVENT_LOOP_DELAY_MS: '0' }

let sequence = 0
async function pair (t: Parameters<typeof build>[0]): Promise<{ writer: FastifyInstance, feed: (id: string, after?: string) => Promise<Feed> }> {
  const writer = await build(t, env)
  const follower = await build(t, env)
  const address = await follower.listen({ port: 0, host: '127.0.0.1' })
  return {
    writer,
    feed: async (id, after) => await openFeed(`${address}/v1/conversations/${id}/events`, after === undefined ? {} : { 'last-event-id': after })
  }
}

async function conversation (app: FastifyInstance): Promise<{ id: string, position: string }> {
  const id = `faults-${process.pid}-${++sequence}`
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'feeds' } })
  return { id, position: created.headers['last-event-id'] as string }
}

/**
 * A follower as a client runs one: whenever the server ends its stream, it resumes from the
 * last id it got. `events` fills as they arrive; stop() closes it and waits.
 */
function resumingFollower (open: (after: string) => Promise<Feed>, start: string): { events: EventSourceMessage[], stop: () => Promise<void> } {
  const events: EventSourceMessage[] = []
  const state = { following: true }
  const resuming = (async () => {
    while (state.following) {
      const follower = await open(events.at(-1)?.id ?? start).catch(() => undefined)
      if (follower === undefined || follower.status !== 200) { await sleep(200); continue }
      const closing = setInterval(() => { if (!state.following) follower.close() }, 50)
      let seen = 0
      const copy = setInterval(() => { events.push(...follower.events.slice(seen)); seen = follower.events.length }, 10)
      await follower.ended
      clearInterval(copy)
      clearInterval(closing)
      events.push(...follower.events.slice(seen))
    }
  })()
  return { events, stop: async () => { state.following = false; await resuming } }
}

t.test('a Redis restart or pause during a stream: the follower gets every event after it, once, in order', async (t) => {
  const { writer, feed } = await pair(t)
  const { id, position } = await conversation(writer)
  await writer.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ id: 'r', role: 'assistant', status: 'in_progress' }] } })
  const { events, stop } = resumingFollower(async (after) => await feed(id, after), position)
  const until = async (count: number): Promise<void> => {
    for (let waited = 0; events.length < count && waited < 15_000; waited += 50) await sleep(50)
  }
  let seq = 0
  const delta = async (): Promise<number> => {
    const response = await writer.inject({ method: 'POST', url: `/v1/conversations/${id}/messages/r/deltas`, payload: { seq: seq + 1, text: `d${seq + 1} ` } })
    if (response.statusCode === 200) seq++
    return response.statusCode
  }
  for (let i = 0; i < 3; i++) await delta()
  await until(4)
  // The test server keeps nothing on disk by itself: SAVE first, so the restart keeps the stream.
  await writer.redis.save()
  await server.restart()
  const statuses: number[] = []
  for (let tries = 0; statuses.filter((status) => status === 200).length < 3 && tries < 100; tries++) {
    statuses.push(await delta())
    if (statuses.at(-1) !== 200) await sleep(100)
  }
  t.ok(statuses.every((status) => status === 200 || status === 503), `writes answer 200 or 503 while Redis comes back (${[...new Set(statuses)].join(', ')})`)
  await server.pause(1500)
  const during = delta()
  t.equal(await during, 200, 'a write queued through a pause goes through')
  await until(8)
  await stop()
  t.same(dataOf(events).map((event) => event.type === 'message.delta' ? event.seq : event.type), ['message.created', 1, 2, 3, 4, 5, 6, 7],
    'every delta once, in order, across the restart and the pause')
  t.same(events.map((event) => Number((event.id as string).slice((event.id as string).lastIndexOf('-') + 1))), [1, 2, 3, 4, 5, 6, 7, 8], 'ids in write order')
  t.equal((await writer.inject({ method: 'GET', url: `/v1/conversations/${id}/messages/r` })).json().text, 'd1 d2 d3 d4 d5 d6 d7 ', 'the text is its deltas')
})

t.test('a Redis restart under a user\'s feed: the follower resumes, and gets each acknowledged write once, in order', async (t) => {
  const writer = await build(t, env)
  const follower = await build(t, env)
  const address = await follower.listen({ port: 0, host: '127.0.0.1' })
  const userId = `faults-user-${process.pid}-${++sequence}`
  const id = `faults-${process.pid}-${++sequence}`
  const listed = await writer.inject({ method: 'GET', url: `/v1/users/${userId}/conversations` })
  const { events, stop } = resumingFollower(async (after) =>
    await openFeed(`${address}/v1/users/${userId}/events`, { 'last-event-id': after }), listed.headers['last-event-id'] as string)
  const acknowledged: number[] = []
  const write = async (title: string): Promise<void> => {
    for (let tries = 0; tries < 100; tries++) {
      const response = await writer.inject({ method: 'PATCH', url: `/v1/conversations/${id}`, payload: { title } })
      if (response.statusCode === 200) { acknowledged.push(response.json().version); return }
      await sleep(100)
    }
  }
  t.equal((await writer.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId } })).statusCode, 201)
  acknowledged.push(1)
  await write('before')
  await writer.redis.save()
  await server.restart()
  await write('after 1')
  await write('after 2')
  for (let waited = 0; events.filter((event) => event.event !== 'reset').length < acknowledged.length && waited < 15_000; waited += 50) await sleep(50)
  await stop()
  const versions = dataOf(events).map((event) => event.version as number)
  t.same(versions, [...versions].sort((a, b) => a - b), 'in order')
  t.equal(new Set(events.map((event) => event.id)).size, events.length, 'each once')
  t.same(acknowledged.filter((version) => !versions.includes(version)), [], `every acknowledged write (${acknowledged.join(', ')}) is in the feed`)
  t.same(events.map((event) => event.event)[0], 'conversation.created')
})

t.test('random interleavings: what each follower assembles is what committed, and the text is its deltas', async (t) => {
  const { writer, feed } = await pair(t)
  type Step = { kind: 'append' } | { kind: 'delta', text: string } | { kind: 'finish' } | { kind: 'edit' } | { kind: 'reconnect' }
  const step = fc.oneof(
    fc.constant<Step>({ kind: 'append' }),
    fc.string({ maxLength: 8, unit: 'binary' }).map((text): Step => ({ kind: 'delta', text })),
    fc.string({ maxLength: 3 }).map((text): Step => ({ kind: 'delta', text })),
    fc.constant<Step>({ kind: 'finish' }),
    fc.constant<Step>({ kind: 'edit' }),
    fc.constant<Step>({ kind: 'reconnect' })
  )
  let runs = 0
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 25 }), async (steps) => {
    runs++
    const { id, position } = await conversation(writer)
    const committed: string[] = []
    const received: string[] = []
    const acknowledged = new Map<string, string>()
    let follower = await feed(id, position)
    let streaming: { id: string, seq: number } | undefined
    const write = async (method: 'POST' | 'PATCH', url: string, payload: Json): Promise<void> => {
      const response = await writer.inject({ method, url: `/v1/conversations/${id}${url}`, payload })
      if (response.statusCode >= 300) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`)
      committed.push(response.headers['last-event-id'] as string)
    }
    for (const next of steps) {
      if (next.kind === 'reconnect') {
        follower.close()
        received.push(...follower.events.map((event) => event.id as string))
        follower = await feed(id, received.at(-1) ?? position)
      } else if (next.kind === 'append' || streaming === undefined) {
        streaming = { id: `m${committed.length}`, seq: 0 }
        await write('POST', '/messages', { messages: [{ id: streaming.id, role: 'assistant', status: 'in_progress' }] })
        acknowledged.set(streaming.id, '')
      } else if (next.kind === 'delta') {
        await write('POST', `/messages/${streaming.id}/deltas`, { seq: ++streaming.seq, text: next.text })
        acknowledged.set(streaming.id, `${acknowledged.get(streaming.id) ?? ''}${next.text}`)
      } else {
        await write('PATCH', `/messages/${streaming.id}`, next.kind === 'finish' ? { status: 'completed' } : { metadata: { edited: true } })
        if (next.kind === 'finish') streaming = undefined
      }
    }
    const rest = await follower.until(committed.length - received.length)
    follower.close()
    received.push(...rest.map((event) => event.id as string))
    if (JSON.stringify(received) !== JSON.stringify(committed)) throw new Error(`followed ${received.join(' ')}, committed ${committed.join(' ')}`)
    for (const [messageId, text] of acknowledged) {
      const stored = (await writer.inject({ method: 'GET', url: `/v1/conversations/${id}/messages/${messageId}` })).json()
      if (stored.text !== text) throw new Error(`${messageId}: ${JSON.stringify(stored.text)} is not its deltas ${JSON.stringify(text)}`)
    }
  }), { numRuns: 15 })
  t.equal(runs, 15, 'no loss, no duplicate, no reordering in 15 random runs; each text is the concatenation of its acknowledged deltas')
})
