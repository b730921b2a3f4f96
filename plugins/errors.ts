import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { ERROR_DETAILS, type ErrorDetails } from '../src/errors.js'

const RETRYABLE = new Set(['STORE_UNAVAILABLE', 'AUTH_UNAVAILABLE', 'FST_UNDER_PRESSURE', 'TOO_MANY_FOLLOWERS'])

function send (reply: FastifyReply, statusCode: number, code: string, message: string, details?: ErrorDetails): FastifyReply {
  return reply.code(statusCode).type('application/json').send({
    statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message, ...details
  })
}

/**
 * The one place errors become responses: `{ statusCode, code, error, message }`.
 * Client errors keep their status and code; 503 gets Retry-After; anything else is a
 * bug, answered 500 with no detail, since messages and stacks can leak internals.
 */
export default fp(async (fastify) => {
  const { retryAfterSeconds } = fastify.config

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const statusCode = error.statusCode ?? 500
    if (error.validation !== undefined) {
      return send(reply, 400, 'FST_ERR_VALIDATION', error.message)
    }
    if (statusCode >= 400 && statusCode < 500) {
      return send(reply, statusCode, error.code ?? 'BAD_REQUEST', error.message, (error as { [ERROR_DETAILS]?: ErrorDetails })[ERROR_DETAILS])
    }
    // The store or the identity provider is away, or the instance sheds load: all worth a retry.
    if (statusCode === 503 && RETRYABLE.has(error.code)) {
      if (!reply.hasHeader('retry-after')) reply.header('retry-after', String(retryAfterSeconds))
      return send(reply, 503, error.code, error.message)
    }
    if (error.code === 'CORRUPT_RECORD') return send(reply, 500, error.code, error.message)
    return send(reply, 500, 'INTERNAL_SERVER_ERROR', 'Internal Server Error')
  })

  fastify.setNotFoundHandler((request, reply) => {
    send(reply, 404, 'FST_ERR_NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0] ?? ''} not found`)
  })

  // Logging only: onError cannot change the reply. A 5xx is logged here with its detail
  // (name, code, message, cause), which the response never carries.
  fastify.addHook('onError', async (request, reply, error) => {
    const { statusCode = 500, code } = error as FastifyError
    // An outage of the store or the identity provider is expected now and then: warn, not error.
    if (RETRYABLE.has(code)) request.log.warn({ err: error }, 'request refused: try again later')
    else if (statusCode >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.info({ code, statusCode }, error.message)
  })
}, { name: 'errors', dependencies: ['config'] })
