import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const SAFE_ID = /^[\w.:-]{1,128}$/
const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/

/**
 * The id of a request: the caller's `x-request-id`, else the trace id of its W3C
 * `traceparent`, else a new UUID. Ids from outside are checked, since they go into logs.
 */
export function requestIdOf (request: IncomingMessage): string {
  const given = request.headers['x-request-id']
  if (typeof given === 'string' && SAFE_ID.test(given)) return given
  const traceId = TRACEPARENT.exec(String(request.headers.traceparent ?? ''))?.[1]
  if (traceId !== undefined && !/^0+$/.test(traceId)) return traceId
  return randomUUID()
}
