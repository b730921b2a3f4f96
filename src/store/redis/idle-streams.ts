import type { Cluster, Redis } from 'ioredis'

export interface RedisIdleStreamsOptions {
  client: Redis | Cluster
  key: string
  idleTimeoutMs: number
  /** The service's TTL (REDIS_TTL), in ms. */
  ttlMs: number
  clock: () => number
  /** Ends one stream if it is idle (RedisMessages.timeOutIfIdle), bounded in time. */
  timeOutIfIdle: (id: string, messageId: string, idleMs: number) => Promise<'ended' | 'gone' | number>
  /** Bounds an operation in time and turns Redis failures into 503s. */
  guard: <T>(operation: () => Promise<T>) => Promise<T>
  onError: (error: unknown) => void
}

/** How many due streams one sweep looks at; the next sweep takes the rest. */
const SWEEP_BATCH = 100

/**
 * The streams every instance may have to time out, in one sorted set of their own
 * (`<prefix>streams`, member `<conversationId> <messageId>`, scored by when the stream may be
 * idle at the earliest). An entry is added before the append that starts the stream, so no
 * crash leaves a stream that nothing times out; an entry whose stream has ended is removed
 * when it comes due. Deltas never touch it: the sweep reads a stream's own last delta time in
 * its conversation's slot, and moves the entry to when that makes it due.
 */
export class RedisIdleStreams {
  readonly #options: RedisIdleStreamsOptions

  constructor (options: RedisIdleStreamsOptions) {
    this.#options = options
  }

  /**
   * Adds the entries of streams about to start; ids never hold a space (schemas.ts). The set
   * lives for the idle timeout and the service's TTL after the newest start: every key has a TTL.
   */
  async track (id: string, messageIds: string[]): Promise<void> {
    const { client, key, clock, idleTimeoutMs, ttlMs } = this.#options
    const due = clock() + idleTimeoutMs
    await client.multi().zadd(key, ...messageIds.flatMap((messageId) => [due, `${id} ${messageId}`])).pexpire(key, idleTimeoutMs + ttlMs).exec()
  }

  /** Times out the streams that are due; several instances may sweep at once, and the scripts make that safe. */
  async sweep (): Promise<void> {
    const { client, key, clock, idleTimeoutMs, timeOutIfIdle, guard, onError } = this.#options
    const due = await guard(async () => await client.zrange(key, '-inf', String(clock()), 'BYSCORE', 'LIMIT', 0, SWEEP_BATCH))
    for (const member of due) {
      const [id, messageId] = member.split(' ') as [string, string]
      try {
        const outcome = await timeOutIfIdle(id, messageId, idleTimeoutMs)
        // XX: an entry another instance removed meanwhile stays removed.
        await guard(async () => typeof outcome === 'number' ? await client.zadd(key, 'XX', outcome, member) : await client.zrem(key, member))
      } catch (error) {
        onError(error)
      }
    }
  }
}
