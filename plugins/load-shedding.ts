import underPressure from '@fastify/under-pressure'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Answers 503 with Retry-After while the event loop lags or the heap is nearly full, so an
 * overloaded instance sheds work instead of timing everything out. Routes opt out with
 * `config: { pressureHandler: keepServing }` (liveness must keep answering).
 */
export default fp(async (fastify) => {
  const { maxEventLoopDelayMs, maxHeapUsedBytes, retryAfterSeconds } = fastify.config
  await fastify.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxHeapUsedBytes,
    // under-pressure treats 0 as unset (and sends 10), so 0 becomes 1 here (and in shedWith).
    retryAfter: Math.max(1, retryAfterSeconds),
    message: 'The service is overloaded; retry later'
  })
}, { name: 'load-shedding', dependencies: ['config'] })

/** A pressure handler that lets the request through. */
export function keepServing (): void {}

/**
 * A pressure handler that sheds the request with the route's own 503 body, for routes whose
 * documented 503 is not the error body (the readiness probe).
 */
export function shedWith (retryAfterSeconds: number, body: () => unknown) {
  return (_request: FastifyRequest, reply: FastifyReply): unknown => {
    reply.code(503).header('retry-after', String(Math.max(1, retryAfterSeconds)))
    return body()
  }
}
