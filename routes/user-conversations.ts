import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { decodeCursor, encodeCursor } from '../src/http/cursor.js'
import { serializePage } from '../src/http/page-serializer.js'
import { ConversationPageSchema, DeleteUserResultSchema, errorResponses, ListQuerySchema, UserParamsSchema } from '../src/schemas.js'
import type { ListOptions } from '../src/store/types.js'

const tags = ['users']

const userConversationRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.get('/users/:userId/conversations', {
    schema: {
      tags,
      summary: "List a user's conversations, most recently updated first; Last-Event-ID names where the user's feed goes on from",
      params: UserParamsSchema,
      querystring: ListQuerySchema,
      response: { 200: ConversationPageSchema, ...errorResponses(400, 401, 500, 503) }
    }
  }, async (request, reply) => {
    const { limit, view, cursor, tenantId } = request.query
    const options: ListOptions = { limit, view }
    if (cursor !== undefined) options.cursor = decodeCursor(cursor)
    if (tenantId !== undefined) options.tenantId = tenantId
    const page = await store.listByUser(request.params.userId, options, request.caller.reach)
    const body = serializePage(page.items, page.nextCursor === null ? null : encodeCursor(page.nextCursor), (conversationId, error) => {
      request.log.error({ conversationId, reason: (error as Error).message }, '[STORE] record skipped: it cannot be serialised')
    })
    // Already JSON: Fastify sends a string with a JSON content type as it is. Last-Event-ID: where the user's feed goes on from.
    return await reply.type('application/json; charset=utf-8').header('last-event-id', page.position).send(body as never)
  })

  fastify.delete('/users/:userId/conversations', {
    config: { role: 'admin', audit: 'user.delete-all' },
    schema: {
      tags,
      summary: "Delete all of a user's conversations (within the caller's tenants); needs the admin role",
      params: UserParamsSchema,
      response: { 200: DeleteUserResultSchema, ...errorResponses(400, 401, 500, 503) }
    }
  }, async (request) => {
    const deleted = await store.deleteByUser(request.params.userId, request.caller.reach)
    request.auditFacts = { deleted }
    return { deleted }
  })
}

export default userConversationRoutes
