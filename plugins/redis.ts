import fastifyRedis, { type FastifyRedis } from '@fastify/redis'
import fp from 'fastify-plugin'
import type { Redis, RedisOptions } from 'ioredis'
import type { RedisConfig } from '../src/config.js'
import { defaultAzureTokenSource, TokenRotation, type TokenSource } from '../src/store/redis/entra-token.js'
import { applyToken, connectionsOf, openClient, reconnectDelay, type RedisClient } from '../src/store/redis/connection.js'

export interface RedisPluginOptions {
  config: RedisConfig
  /** Where Entra ID tokens come from (REDIS_AUTH=entra); DefaultAzureCredential by default. */
  tokenSource?: TokenSource
}

/**
 * Connects to Redis (or a Redis Cluster) and decorates the instance with the client, as
 * @fastify/redis does; keeps Entra ID tokens fresh and idle connections alive.
 */
export default fp<RedisPluginOptions>(async (fastify, { config, tokenSource }) => {
  const log = fastify.log
  // The token rotation starts before the client exists and updates it once it does.
  const current: { client?: RedisClient } = {}
  let credentials: RedisOptions = {}
  let rotation: TokenRotation | undefined

  if (config.auth === 'entra') {
    const username = config.username as string
    rotation = new TokenRotation({
      source: tokenSource ?? defaultAzureTokenSource(),
      log,
      retryDelay: reconnectDelay,
      apply: async (token) => {
        credentials = { username, password: token }
        const { client } = current
        if (client === undefined) return
        await applyToken(client, username, token)
        // Without a token at start-up the client waited; now it may connect.
        if (client.status === 'wait') client.connect().catch(() => {})
      }
    })
    fastify.addHook('onClose', async () => { rotation?.stop() })
    await rotation.refresh()
  }

  // With Entra ID but no token yet, the client waits: requests get 503 until one comes.
  const waitForToken = rotation !== undefined && credentials.password === undefined
  const { client, ready } = await openClient(config, log, waitForToken ? { lazyConnect: true } : credentials, rotation === undefined)
  current.client = client

  if (ready) {
    await fastify.register(fastifyRedis, { client: client as Redis, closeClient: true })
  } else {
    // @fastify/redis waits for the first 'ready' before it registers, which would turn an
    // unreachable Redis into a start-up crash; so decorate the same way ourselves.
    log.warn('[STORE] Redis is not reachable at start-up; answering 503 until it is')
    fastify.decorate('redis', client as unknown as FastifyRedis)
    fastify.addHook('onClose', async () => { await client.quit().catch(() => client.disconnect()) })
  }

  // Azure closes idle connections after 10 minutes and ioredis sends nothing on its own.
  const keepAlive = setInterval(() => {
    for (const connection of connectionsOf(client)) {
      if (connection.status === 'ready') connection.ping().catch(() => {})
    }
  }, config.keepAliveMs).unref()
  fastify.addHook('onClose', async () => { clearInterval(keepAlive) })
}, { name: 'redis-connection' })
