import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { decodeCursor, encodeCursor } from '../src/http/cursor.js'
import { ConversationPageSchema, DeleteUserResultSchema, ErrorBodySchema, ListQuerySchema, UserParamsSchema } from '../src/schemas.js'
import type { ListOptions } from '../src/store/types.js'

const tags = ['users']
const errors = { 400: ErrorBodySchema, 401: ErrorBodySchema, 503: ErrorBodySchema }

const userConversationRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.get('/users/:userId/conversations', {
    schema: {
      tags,
      summary: "List a user's conversations, most recently updated first",
      params: UserParamsSchema,
      querystring: ListQuerySchema,
      response: { 200: ConversationPageSchema, ...errors }
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
      response: { 200: DeleteUserResultSchema, ...errors }
    }
  }, async (request) => ({ deleted: await store.deleteByUser(request.params.userId) }))
}

export default userConversationRoutes
