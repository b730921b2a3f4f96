import { createRequire } from 'node:module'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'

type Callback = Parameters<FastifyRateLimitStore['incr']>[1]
interface Counter { incr: (key: string, callback: Callback, timeWindow: number, max: number) => void }

// @fastify/rate-limit's in-process store, which its package does not export by name.
const LocalStore = createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore.js') as
  new (continueExceeding: boolean, exponentialBackoff: boolean, cache: number) => Counter

/**
 * The in-process store of @fastify/rate-limit, answering a copy of each count. Its own
 * answer is the live counter, which the plugin reads only after an await: of requests that
 * arrive together, each would see the last one's count and all would be refused.
 */
export class SnapshotLocalStore implements FastifyRateLimitStore {
  readonly #store = new LocalStore(false, false, 5000)

  incr (key: string, callback: Callback, timeWindow: number, max: number): void {
    this.#store.incr(key, (error, count) => { callback(error, count === undefined ? undefined : { current: count.current, ttl: count.ttl }) }, timeWindow, max)
  }

  // A route with limits of its own would get a child store; no route here has any.
  child (): this {
    return this
  }
}
