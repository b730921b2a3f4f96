import fp from 'fastify-plugin'
import { MemoryConversationStore } from '../src/store/memory-store.js'
import type { ConversationStore } from '../src/store/types.js'

declare module 'fastify' {
  interface FastifyInstance {
    conversationStore: ConversationStore
  }
}

export interface ConversationStoreOptions {
  /** A store made by the caller, which this plugin then closes with the instance. */
  store?: ConversationStore
}

/** Decorates the instance with the configured `ConversationStore` and closes it on shutdown. */
export default fp<ConversationStoreOptions>(async (fastify, options) => {
  const { config } = fastify
  const store = options.store ?? new MemoryConversationStore({
    maxConversations: config.memoryMaxConversations,
    limits: { ttlSeconds: config.ttlSeconds, maxMessagesPerConversation: config.maxMessagesPerConversation }
  })
  fastify.decorate('conversationStore', store)
  fastify.addHook('onClose', async () => { await store.close() })
  fastify.log.info({ backend: store.backend }, `[STORE] using the ${store.backend} backend`)
}, { name: 'conversation-store', dependencies: ['config'] })
