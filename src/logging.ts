import type { FastifyServerOptions } from 'fastify'

interface LoggedError {
  type: string
  message: string
  code?: unknown
  statusCode?: unknown
  cause?: LoggedError
}

/**
 * Errors are logged by name, code and message only: a stack trace can carry paths and
 * values that do not belong in a shared log. The cause is kept the same way, since a 503
 * says little without it (a timeout, a refused connection, CLUSTERDOWN…).
 */
export function serializeError (error: unknown): LoggedError {
  if (!(error instanceof Error)) return { type: typeof error, message: String(error) }
  const { code, statusCode, cause } = error as Error & { code?: unknown, statusCode?: unknown }
  return {
    type: error.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    ...(statusCode === undefined ? {} : { statusCode }),
    ...(cause === undefined ? {} : { cause: serializeError(cause) })
  }
}

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>
type ErrorSerializer = NonNullable<NonNullable<LoggerOptions['serializers']>['err']>

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    // Fastify's type insists on a stack; leaving it out is the point.
    serializers: { err: serializeError as unknown as ErrorSerializer },
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.password'], censor: '[redacted]' }
  }
}
