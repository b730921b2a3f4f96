import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { RateLimitedError } from '../src/errors.js'
import { SnapshotLocalStore } from '../src/http/rate-limit-store.js'

/**
 * Per-caller request limits on the routes registered after it (/v1 only: health and docs are
 * never limited), counted in Redis when there is one so that every instance shares them.
 * A limit that cannot be counted (Redis away) lets the request through: the store answers
 * for itself.
 */
export default fp(async (fastify) => {
  const { keyPrefix } = fastify.config.redis ?? { keyPrefix: '' }
  await fastify.register(rateLimit, {
    global: true,
    // After authentication (onRequest), before the body is read.
    hook: 'preParsing',
    timeWindow: 60_000,
    keyGenerator: (request) => `caller:${request.caller.name}`,
    allowList: (request) => request.caller.ratePerMinute === undefined,
    max: (request) => request.caller.ratePerMinute as number,
    ...(fastify.hasDecorator('redis') ? { redis: fastify.redis, nameSpace: `${keyPrefix}rate:` } : { store: SnapshotLocalStore }),
    skipOnError: true,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, { max, after }) => new RateLimitedError(max, after)
  })
}, { name: 'rate-limit', dependencies: ['auth', 'config'] })
