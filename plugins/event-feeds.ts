import sse, { type fastifySSE } from '@fastify/sse'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    eventFeeds: EventFeeds
  }
}

/**
 * The event streams this instance serves: at most EVENTS_MAX_CONNECTIONS at once, and all
 * of them ended when the instance closes, so that a SIGTERM drains within its budget.
 */
export class EventFeeds {
  readonly #open = new Set<() => void>()
  readonly maxConnections: number

  constructor (maxConnections: number) {
    this.maxConnections = maxConnections
  }

  get size (): number { return this.#open.size }

  /** Counts a stream in, with how to end it; false when the instance serves its most already. */
  admit (end: () => void): boolean {
    if (this.#open.size >= this.maxConnections) return false
    this.#open.add(end)
    return true
  }

  leave (end: () => void): void { this.#open.delete(end) }

  endAll (): void {
    for (const end of [...this.#open]) end()
  }
}

/** Server-sent events (@fastify/sse), with a comment line every EVENTS_HEARTBEAT_SECONDS. */
export default fp(async (fastify) => {
  const { eventsHeartbeatSeconds, eventsMaxConnections } = fastify.config
  // The package's default export, at run time, is the plugin wrapped so that its route hook reaches every route; its types name it otherwise.
  await fastify.register(sse as unknown as typeof fastifySSE, { heartbeatInterval: eventsHeartbeatSeconds * 1000 })
  const feeds = new EventFeeds(eventsMaxConnections)
  fastify.decorate('eventFeeds', feeds)
  fastify.addHook('preClose', async () => { feeds.endAll() })
}, { name: 'event-feeds', dependencies: ['config'] })
