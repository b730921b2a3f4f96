import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { decodeCursor, encodeCursor } from '../src/http/cursor.js'
import { ConversationPageSchema, DeleteUserResultSchema, errorResponses, ListQuerySchema, UserParamsSchema } from '../src/schemas.js'
import type { ListOptions } from '../src/store/types.js'

const tags = ['users']

const userConversationRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.get('/users/:userId/conversations', {
    schema: {
      tags,
      summary: "List a user's conversations, most recently updated first",
      params: UserParamsSchema,
      querystring: ListQuerySchema,
      response: { 200: ConversationPageSchema, ...errorResponses(400, 401, 503) }
    }
  }, async (request) => {
    const { limit, view, cursor, tenantId } = request.query
    const options: ListOptions = { limit, view }
    if (cursor !== undefined) options.cursor = decodeCursor(cursor)
    if (tenantId !== undefined) options.tenantId = tenantId
    const page = await store.listByUser(request.params.userId, options)
    return { items: page.items, nextCursor: page.nextCursor === null ? null : encodeCursor(page.nextCursor) }
  })

  fastify.delete('/users/:userId/conversations', {
    schema: {
      tags,
      summary: "Delete all of a user's conversations",
      params: UserParamsSchema,
      response: { 200: DeleteUserResultSchema, ...errorResponses(400, 401, 503) }
    }
  }, async (request) => ({ deleted: await store.deleteByUser(request.params.userId) }))
}

export default userConversationRoutes
