import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { getHeapStatistics } from 'node:v8'
import type { Redis } from 'ioredis'
import { instrumentStore } from '../src/store/instrumented-store.js'
import { tracingActive } from '../src/telemetry/runtime.js'
import { withStoreAttributes } from '../src/telemetry/store-attributes.js'
import { MemoryConversationStore } from '../src/store/memory/store.js'
import { RedisConversationStore } from '../src/store/redis/store.js'
import type { ConversationStore } from '../src/store/types.js'
import type { StoreLimits } from '../src/store/conversation-rules.js'
import { loadTokenCounter } from '../src/tokens.js'

declare module 'fastify' {
  interface FastifyInstance {
    conversationStore: ConversationStore
  }
}

export interface ConversationStoreOptions {
  /** A store made by the caller, which this plugin then closes with the instance. */
  store?: ConversationStore
}

/**
 * A sixth of the heap that is left once the service has started (the token encoding alone
 * takes about 35 MB): stored objects, and the garbage of the requests that write them, take
 * about three times their JSON, and load shedding starts at 90 % of the heap.
 */
function defaultMemoryMaxBytes (): number {
  const { heap_size_limit: limit, used_heap_size: used } = getHeapStatistics()
  return Math.floor((limit - used) / 6)
}

async function configuredStore (fastify: FastifyInstance): Promise<ConversationStore> {
  const { config, log } = fastify
  const limits: StoreLimits = {
    ttlSeconds: config.ttlSeconds,
    maxMessagesPerConversation: config.maxMessagesPerConversation,
    streams: { idleTimeoutMs: config.streamIdleTimeoutSeconds * 1000, maxTextChars: config.maxStreamedTextChars },
    ...(config.maxConversationsPerUser === undefined ? {} : { maxConversationsPerUser: config.maxConversationsPerUser })
  }
  const countTokens = await loadTokenCounter(config.tokenEncoding)
  if (config.redis === undefined) {
    const maxBytes = config.memoryMaxBytes ?? defaultMemoryMaxBytes()
    return new MemoryConversationStore({
      maxConversations: config.memoryMaxConversations,
      maxBytes,
      viewCacheBytes: config.viewCacheMaxBytes,
      limits,
      countTokens,
      eventsRetained: config.eventsRetained,
      onSweepError: (error) => { log.error({ err: error }, '[STORE] the sweep of idle streams failed') }
    })
  }
  return new RedisConversationStore({
    client: fastify.redis as unknown as Redis,
    keyPrefix: config.redis.keyPrefix,
    timeoutMs: config.redis.timeoutMs,
    viewCacheBytes: config.viewCacheMaxBytes,
    limits,
    countTokens,
    onCorruptRecord: (id, reason) => { log.error({ conversationId: id, reason }, '[STORE] corrupt record skipped') },
    eventsRetained: config.eventsRetained,
    onSweepError: (error) => { log.warn({ error: (error as Error).name }, '[STORE] the sweep of idle streams or an event feed failed; it goes on when Redis answers') },
    onIndexMoveFailed: (id, error) => {
      log.warn({ conversationId: id, error: (error as Error).name }, '[STORE] index entry left at its previous position')
    }
  })
}

/**
 * Decorates the instance with the configured `ConversationStore`: Redis when REDIS_URL is
 * set (the redis-connection plugin is then registered first), memory otherwise.
 */
export default fp<ConversationStoreOptions>(async (fastify, options) => {
  const { config, log } = fastify
  const store = options.store ?? await configuredStore(fastify)
  // Named on the spans when tracing runs, timed and counted when the metrics plugin is on;
  // the backends stay unaware of either.
  const traced = tracingActive() ? withStoreAttributes(store) : store
  fastify.decorate('conversationStore', fastify.storeObserver === undefined ? traced : instrumentStore(traced, fastify.storeObserver))
  fastify.addHook('onClose', async () => { await store.close() })
  log.info({ backend: store.backend }, `[STORE] using the ${store.backend} backend`)
  if (config.redisPlaintext) log.warn('[STORE] REDIS_ALLOW_PLAINTEXT=true: Redis traffic is not encrypted; for local development only')
}, { name: 'conversation-store', dependencies: ['config', 'metrics'] })
