import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import type { FeedEvent, Following } from '../src/store/events.js'
import type { Reach } from '../src/store/types.js'
import { openFeed } from './helpers/event-feed.js'
import { build } from './helpers/build.js'
import { countTokens } from './helpers/tokens.js'

// The feed writer (src/http/event-feed.ts) over real sockets: a follower that leaves while
// the store is still setting its feed up must not hold its place among the instance's
// EVENTS_MAX_CONNECTIONS, however quiet the conversation.

/** A promise, and the function that settles it. */
function signal (): { promise: Promise<void>, resolve: () => void } {
  let settle = (): void => {}
  const promise = new Promise<void>((resolve) => { settle = resolve })
  return { promise, resolve: () => { settle() } }
}

/** A store whose follow() waits until the test lets it go on. */
class GatedStore extends MemoryConversationStore {
  arrived = signal()
  gate = signal()

  override async follow (id: string, after: string | undefined, reach: Reach, listener: (event: FeedEvent | null) => void): Promise<Following> {
    this.arrived.resolve()
    await this.gate.promise
    return await super.follow(id, after, reach, listener)
  }
}

t.test('a follower that leaves before its feed starts gives its place back', async (t) => {
  const store = new GatedStore({ maxConversations: 10, limits: { ttlSeconds: 60, maxMessagesPerConversation: 100 }, countTokens })
  const app = await build(t, { EVENTS_MAX_CONNECTIONS: '1' }, { store })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal((await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id: 'quiet', userId: 'u1' } })).statusCode, 201)
  const abort = new AbortController()
  const leaving = fetch(`${address}/v1/conversations/quiet/events`, { headers: { accept: 'text/event-stream' }, signal: abort.signal }).catch(() => undefined)
  await store.arrived.promise
  abort.abort()
  await leaving
  // Its socket is closed before the feed starts.
  await sleep(100)
  store.gate.resolve()
  await sleep(100)
  const next = await openFeed(`${address}/v1/conversations/quiet/events`)
  t.equal(next.status, 200, 'the next follower is admitted: the one that left holds no place')
  next.close()
})
