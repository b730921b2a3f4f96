import { trace } from '@opentelemetry/api'
import type { ConversationStore } from '../store/types.js'

// Methods whose first argument is not a conversation id, and those that are no operation.
const BY_USER = new Set(['listByUser', 'deleteByUser'])
const UNTRACED = new Set(['stats', 'close', 'ping', 'backend'])

/**
 * The store with each operation named on the span it runs in, with the conversation it
 * concerns: ids only, never what is stored.
 */
export function withStoreAttributes (store: ConversationStore): ConversationStore {
  return new Proxy(store, {
    get (target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function') return value
      if (typeof property !== 'string' || UNTRACED.has(property)) return value.bind(target)
      return (...args: unknown[]) => {
        const span = trace.getActiveSpan()
        span?.setAttribute('conversation_store.operation', property)
        if (!BY_USER.has(property) && typeof args[0] === 'string') span?.setAttribute('conversation_store.conversation_id', args[0])
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    }
  })
}
