import type { FastifySchema } from 'fastify'
import { ErrorBodySchema } from '../schemas.js'

/**
 * A /v1 route's schema as the OpenAPI document shows it: which bearer schemes it takes (see
 * the docs plugin), and the answers that authentication (403) and rate limits (429) add.
 */
export function documentedAccess (schema: FastifySchema | undefined, schemes: string[], limited: boolean): FastifySchema {
  const response = { ...schema?.response as Record<string, unknown> }
  if (schemes.length > 0) response['403'] = ErrorBodySchema
  if (limited) response['429'] = ErrorBodySchema
  return {
    ...schema,
    response,
    ...(schemes.length === 0 ? {} : { security: schemes.map((scheme) => ({ [scheme]: [] })) })
  }
}
