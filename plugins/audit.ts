import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** What a handler knows of a write that the request does not say (see the audit plugin). */
export interface AuditFacts {
  conversationId?: string
  tenantId?: string
  userId?: string
  deleted?: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Filled in by a write's handler; null until then. */
    auditFacts: AuditFacts | null
  }
  interface FastifyContextConfig {
    /** Names the action of a write or delete: every request to the route logs one audit line. */
    audit?: string
  }
}

/**
 * One `info` line per write and delete, whatever its outcome: who (the caller's name, never
 * its token or key), what, on which conversation and tenant, and how it ended.
 */
export default fp(async (fastify) => {
  fastify.decorateRequest('auditFacts', null)
  // Only the routes that name an action get the hook: reads pay nothing.
  fastify.addHook('onRoute', (route) => {
    const action = route.config?.audit
    if (action === undefined) return
    const audit = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => { auditLine(request, reply, action) }
    route.onResponse = [...[route.onResponse ?? []].flat(), audit]
  })
}, { name: 'audit', dependencies: ['auth'] })

function auditLine (request: FastifyRequest, reply: FastifyReply, action: string): void {
  const { statusCode } = reply
  const caller = request.caller as FastifyRequest['caller'] | null
  const tenants = caller?.reach.tenants
  // A write that was done reached a conversation in the caller's reach: with one tenant, that one.
  const soleTenant = statusCode < 400 && tenants instanceof Set && tenants.size === 1 ? { tenantId: [...tenants][0] } : {}
  request.log.info({
    audit: true,
    caller: caller?.name ?? null,
    action,
    ...paramsOf(request),
    ...soleTenant,
    ...request.auditFacts,
    outcome: statusCode < 400 ? 'done' : statusCode < 500 ? 'refused' : 'failed',
    statusCode
  }, `audit: ${action}`)
}

function paramsOf (request: FastifyRequest): AuditFacts & { messageId?: string } {
  const { id, messageId, userId } = (request.params ?? {}) as Record<string, string | undefined>
  return {
    ...(id === undefined ? {} : { conversationId: id }),
    ...(messageId === undefined ? {} : { messageId }),
    ...(userId === undefined ? {} : { userId })
  }
}
