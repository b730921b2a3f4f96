import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import { keepServing, shedWith } from '../plugins/load-shedding.js'
import { name, version } from '../src/package-info.js'
import { HealthSchema } from '../src/schemas.js'

const tags = ['health']

const healthRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const { healthTimeoutMs, retryAfterSeconds } = fastify.config

  // Azure's "Always On" pings `/`; it costs nothing, so it answers while shedding too.
  fastify.get('/', {
    config: { pressureHandler: keepServing },
    schema: { tags, summary: 'Name and version', response: { 200: z.object({ name: z.string(), version: z.string() }) } }
  }, async () => ({ name, version }))

  fastify.get('/health/live', {
    // Liveness answers even while the instance sheds load: it is busy, not dead.
    config: { pressureHandler: keepServing },
    schema: { tags, summary: 'Liveness: answers while the process runs', response: { 200: z.object({ status: z.literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/health', {
    // A shedding instance is not ready; the probe hears it in its own documented shape.
    config: { pressureHandler: shedWith(retryAfterSeconds, () => ({ status: 'unavailable', backend: store.backend, reason: 'overloaded' })) },
    schema: { tags, summary: 'Readiness: checks that the store answers', response: { 200: HealthSchema, 503: HealthSchema } }
  }, async (request, reply) => {
    const timeout = new AbortController()
    try {
      // The probe has its own short deadline, so it never waits on a stuck store.
      const health = await Promise.race([
        store.ping(),
        sleep(healthTimeoutMs, undefined, { signal: timeout.signal }).then(() => {
          throw new Error(`no answer within ${healthTimeoutMs} ms`)
        })
      ])
      return { status: 'ok' as const, backend: store.backend, store: { status: 'up' as const, ...health } }
    } catch (error) {
      request.log.warn({ err: error }, '[STORE] health check failed')
      return reply.code(503).header('retry-after', String(Math.max(1, retryAfterSeconds)))
        .send({ status: 'unavailable', backend: store.backend, reason: 'store', store: { status: 'down' } })
    } finally {
      timeout.abort()
    }
  })
}

export default healthRoutes
