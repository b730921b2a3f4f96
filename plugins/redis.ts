import fastifyRedis, { type FastifyRedis } from '@fastify/redis'
import type { FastifyBaseLogger } from 'fastify'
import fp from 'fastify-plugin'
import { Redis, type RedisOptions } from 'ioredis'
import { readFileSync } from 'node:fs'
import type { RedisConfig } from '../src/config.js'

// Failures that retrying cannot fix: stop start-up instead of retrying forever.
const FATAL_CODES = new Set([
  'ENOTFOUND', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'
])
const FATAL_MESSAGES = /^(WRONGPASS|NOAUTH|ERR invalid password|ERR AUTH)/

export function isFatalConnectionError (error: Error & { code?: string }): boolean {
  return (error.code !== undefined && FATAL_CODES.has(error.code)) || FATAL_MESSAGES.test(error.message)
}

/** Capped exponential backoff with full jitter; it never gives up while the process lives. */
export function reconnectDelay (attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(10_000, 100 * 2 ** Math.min(attempt, 10))
  return Math.round(cap / 2 + random() * cap / 2)
}

export function redisOptions (config: RedisConfig, log: FastifyBaseLogger): RedisOptions {
  return {
    // Bounds each command; the store also bounds each whole operation.
    commandTimeout: config.timeoutMs,
    connectTimeout: config.timeoutMs,
    // A command waits for at most one reconnect, then fails: no unbounded queueing.
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => {
      const delayMs = reconnectDelay(attempt)
      log.warn({ attempt, delayMs }, '[STORE] Redis connection lost; reconnecting')
      return delayMs
    },
    // During a failover the old primary turns replica and answers READONLY: reconnect.
    reconnectOnError: (error) => error.message.startsWith('READONLY') ? 2 : false,
    ...(config.tls ? { tls: config.caFile === undefined ? {} : { ca: readFileSync(config.caFile) } } : {})
  }
}

/**
 * Waits for the first connection. Fatal misconfiguration rejects; an unreachable server
 * resolves false, so the service still starts, answers 503, and recovers by itself.
 */
function firstConnection (client: Redis): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onReady = (): void => { settle(); resolve(true) }
    const onError = (error: Error): void => {
      settle()
      if (isFatalConnectionError(error)) reject(error)
      else resolve(false)
    }
    const settle = (): void => { client.off('ready', onReady).off('error', onError) }
    client.on('ready', onReady).on('error', onError)
  })
}

export default fp<{ config: RedisConfig }>(async (fastify, { config }) => {
  const log = fastify.log
  const client = new Redis(config.url, redisOptions(config, log))
  // Errors are logged by message only: ioredis errors never carry the password.
  client.on('error', (error: Error) => { log.warn({ err: error }, '[STORE] Redis error') })
  client.on('ready', () => { log.info('[STORE] Redis connection ready') })

  let ready: boolean
  try {
    ready = await firstConnection(client)
  } catch (error) {
    client.disconnect()
    throw new Error(`Redis refused the connection: ${(error as Error).message}`)
  }

  if (ready) {
    await fastify.register(fastifyRedis, { client, closeClient: true })
  } else {
    // @fastify/redis waits for the first 'ready' before it registers, which would turn an
    // unreachable Redis into a start-up crash; so decorate the same way ourselves.
    log.warn('[STORE] Redis is unreachable at start-up; answering 503 until it is back')
    fastify.decorate('redis', client as unknown as FastifyRedis)
    fastify.addHook('onClose', async () => { await client.quit().catch(() => client.disconnect()) })
  }

  // Azure closes idle connections after 10 minutes and ioredis sends nothing on its own.
  const keepAlive = setInterval(() => { client.ping().catch(() => {}) }, config.keepAliveMs).unref()
  fastify.addHook('onClose', async () => { clearInterval(keepAlive) })
}, { name: 'redis-connection' })
