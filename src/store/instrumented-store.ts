import type { ConversationStore } from './types.js'

export type StoreErrorKind = 'timeout' | 'connection' | 'other'

export interface StoreObserver {
  operation: (operation: string, seconds: number) => void
  error: (operation: string, kind: StoreErrorKind) => void
}

// Methods that are not store operations and need no timing.
const UNTIMED = new Set(['stats', 'close'])

/** What went wrong, for the metrics. Answers a client got wrong (4xx) are not store errors. */
export function storeErrorKind (error: unknown): StoreErrorKind | undefined {
  const { statusCode, cause } = error as { statusCode?: number, cause?: unknown }
  if (statusCode !== undefined && statusCode < 500) return undefined
  if (statusCode === 503) return cause instanceof Error && /timed out/i.test(cause.message) ? 'timeout' : 'connection'
  return 'other'
}

/**
 * Wraps a store so that every operation is timed and every failure counted, without the
 * backends or the routes knowing about metrics.
 */
export function instrumentStore (store: ConversationStore, observer: StoreObserver): ConversationStore {
  return new Proxy(store, {
    get (target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function' || typeof property !== 'string' || UNTIMED.has(property)) {
        return typeof value === 'function' ? value.bind(target) : value
      }
      return async (...args: unknown[]) => {
        const started = performance.now()
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        } catch (error) {
          const kind = storeErrorKind(error)
          if (kind !== undefined) observer.error(property, kind)
          throw error
        } finally {
          observer.operation(property, (performance.now() - started) / 1000)
        }
      }
    }
  })
}
