import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { StoreObserver } from '../src/store/instrumented-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Receives store timings and failures; absent when METRICS_ENABLED=false. */
    storeObserver?: StoreObserver
  }
}

// Connection states ioredis reports; one gauge series each, 1 for the current state.
const CONNECTION_STATES = ['wait', 'connecting', 'connect', 'ready', 'reconnecting', 'close', 'end']

/**
 * Prometheus metrics at /metrics. Labels come from route patterns and fixed sets, never
 * from ids in URLs, so the number of series stays bounded.
 */
export default fp(async (fastify) => {
  if (!fastify.config.metricsEnabled) return
  // One registry per instance: tests build many apps in one process.
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const labelNames = ['method', 'route', 'status_code'] as const

  const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests answered', labelNames, registers })
  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer HTTP requests',
    labelNames,
    registers,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
  })
  const storeDuration = new Histogram({
    name: 'store_operation_duration_seconds',
    help: 'Time of conversation store operations',
    labelNames: ['operation', 'backend'],
    registers,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]
  })
  const storeErrors = new Counter({ name: 'store_errors_total', help: 'Store operations that failed, by kind', labelNames: ['operation', 'backend', 'kind'], registers })

  const store = (): typeof fastify.conversationStore => fastify.conversationStore
  /* eslint-disable no-new -- these gauges are read through the registry */
  new Gauge({
    name: 'redis_connection_state',
    help: '1 for the current state of the Redis connection',
    labelNames: ['state'],
    registers,
    collect () {
      const { connection } = store().stats()
      if (connection === undefined) return
      for (const state of CONNECTION_STATES) this.set({ state }, state === connection ? 1 : 0)
    }
  })
  new Gauge({
    name: 'memory_store_conversations',
    help: 'Conversations held by the memory backend',
    registers,
    collect () { this.set(store().stats().conversations ?? 0) }
  })
  new Gauge({
    name: 'memory_store_bytes',
    help: 'Stored size of the memory backend\'s conversations (bounded by MEMORY_MAX_BYTES)',
    registers,
    collect () { this.set(store().stats().bytes ?? 0) }
  })
  new Gauge({
    name: 'memory_store_evictions',
    help: 'Conversations the memory backend evicted since start',
    registers,
    collect () { this.set(store().stats().evictions ?? 0) }
  })
  new Gauge({
    name: 'view_cache_bytes',
    help: 'What the cache of validated views holds, in the bytes VIEW_CACHE_MAX_BYTES bounds',
    registers,
    collect () { this.set(store().stats().viewCacheBytes ?? 0) }
  })
  new Gauge({
    name: 'message_cache_bytes',
    help: 'What the cache of validated stored messages holds (Redis), in the bytes VIEW_CACHE_MAX_BYTES also bounds',
    registers,
    collect () { this.set(store().stats().messageCacheBytes ?? 0) }
  })
  /* eslint-enable no-new */

  fastify.decorate('storeObserver', {
    operation: (operation: string, seconds: number) => { storeDuration.observe({ operation, backend: store().backend }, seconds) },
    error: (operation, kind) => { storeErrors.inc({ operation, backend: store().backend, kind }) }
  } satisfies StoreObserver)

  // The series of each (method, route, status), looked up once: prom-client otherwise
  // hashes the label object on every request. Routes and statuses are bounded sets.
  const series = new Map<string, { count: Counter.Internal, duration: Histogram.Internal<typeof labelNames[number]> }>()
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${request.method} ${reply.statusCode} ${route}`
    let found = series.get(key)
    if (found === undefined) {
      const labels = { method: request.method, route, status_code: String(reply.statusCode) }
      series.set(key, found = { count: requests.labels(labels), duration: requestDuration.labels(labels) })
    }
    found.count.inc()
    found.duration.observe(reply.elapsedTime / 1000)
    done()
  })

  fastify.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return await reply.type(registry.contentType).send(await registry.metrics())
  })
}, { name: 'metrics', dependencies: ['config'] })
