import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { ANYONE, ApiKeys, callerOf, type Caller } from '../src/auth/caller.js'
import type { Role } from '../src/auth/callers.js'
import { createJwtVerifier, IdentityProviderUnavailableError, InvalidTokenError } from '../src/auth/jwt-verifier.js'
import { AuthUnavailableError, ForbiddenError, TokenRefusedError, UnauthorizedError } from '../src/errors.js'
import { EVERYWHERE } from '../src/store/types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * For onRoute: gives the route a first onRequest hook that finds the caller (API key or
     * Entra ID token) and checks the route's role.
     */
    protect: (route: RouteOptions) => void
    /** The OpenAPI security schemes /v1 takes (see the docs plugin); none when authentication is off. */
    authSchemes: string[]
  }
  interface FastifyRequest {
    /** Who sent a /v1 request: set by the route's authentication hook (see protect). */
    caller: Caller
  }
  interface FastifyContextConfig {
    /** The role a route needs; by default `read` for GET and `write` for the rest. */
    role?: Role
  }
}

const BEARER = /^Bearer +(\S+)\s*$/i

export default fp(async (fastify) => {
  const { apiKeys, callers, jwt, rateLimitPerMinute } = fastify.config
  const limit = rateLimitPerMinute === undefined ? {} : { ratePerMinute: rateLimitPerMinute }
  const keys = new ApiKeys([
    // API_KEYS: full access, as before there were callers.
    ...apiKeys.map((key, i) => ({ sha256: ApiKeys.digestOf(key), caller: { name: `api-key-${i + 1}`, roles: ANYONE.roles, reach: EVERYWHERE, ...limit } })),
    ...callers.flatMap((entry) => entry.apiKeySha256 === undefined ? [] : [{ sha256: entry.apiKeySha256, caller: callerOf(entry, rateLimitPerMinute) }])
  ])
  const apps = new Map(callers.flatMap((entry) => entry.appId === undefined ? [] : [[entry.appId, entry] as const]))
  const verifier = jwt === undefined ? undefined : createJwtVerifier(jwt)
  const required = keys.size > 0 || verifier !== undefined
  const anyone = { ...ANYONE, ...limit }

  async function callerOfToken (token: string, reply: FastifyReply): Promise<Caller> {
    if (verifier === undefined) return refuse(reply, 'it is not a known key')
    let verified
    try {
      verified = await verifier.verify(token)
    } catch (error) {
      if (error instanceof InvalidTokenError) return refuse(reply, error.message)
      if (error instanceof IdentityProviderUnavailableError) throw new AuthUnavailableError({ cause: error })
      throw error
    }
    const entry = apps.get(verified.appId)
    if (entry === undefined) throw new ForbiddenError(`App '${verified.appId}' is not a caller of this service`)
    if (!verified.delegated) return callerOf(entry, rateLimitPerMinute)
    // A user signed in through the app: the app's rights, over that user's conversations only.
    if (verified.objectId === undefined) return refuse(reply, 'a delegated token needs an oid claim')
    return callerOf(entry, rateLimitPerMinute, verified.objectId)
  }

  fastify.decorate('authSchemes', [...(keys.size > 0 ? ['apiKey'] : []), ...(verifier === undefined ? [] : ['entraId'])])
  if (!required) {
    // Authentication off: everyone is the one caller with every right, and no hook runs.
    fastify.decorateRequest('caller', { getter: () => anyone })
    fastify.decorate('protect', () => {})
    return
  }
  fastify.decorateRequest('caller', null as unknown as Caller)
  fastify.decorate('protect', function protect (route: RouteOptions) {
    // Resolved once per route: a request only checks its caller against it.
    const role = route.config?.role ?? (route.method === 'GET' || route.method === 'HEAD' ? 'read' : 'write')
    const authenticate = async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const token = BEARER.exec(request.headers.authorization ?? '')?.[1]
      if (token === undefined) {
        reply.header('www-authenticate', 'Bearer')
        throw new UnauthorizedError()
      }
      request.caller = keys.callerOf(token) ?? await callerOfToken(token, reply)
      if (!request.caller.roles.has(role)) {
        reply.header('www-authenticate', 'Bearer error="insufficient_scope"')
        throw new ForbiddenError(`Caller '${request.caller.name}' lacks the ${role} role`)
      }
    }
    route.onRequest = [authenticate, ...[route.onRequest ?? []].flat()]
  })
}, { name: 'auth', dependencies: ['config'] })

function refuse (reply: FastifyReply, reason: string): never {
  reply.header('www-authenticate', 'Bearer error="invalid_token"')
  throw new TokenRefusedError(reason)
}
