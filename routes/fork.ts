import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { assertMayPlace } from '../src/auth/caller.js'
import { ConversationNotFoundError, ForbiddenError } from '../src/errors.js'
import { forkRecord } from '../src/history/fork.js'
import { ForkBodySchema } from '../src/history-schemas.js'
import { versionHeaders } from '../src/http/preconditions.js'
import { ConversationParamsSchema, ConversationSchema, errorResponses } from '../src/schemas.js'
import type { TaggedConversation } from '../src/store/types.js'

const forkRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.post('/conversations/:id/fork', {
    config: { audit: 'conversation.fork' },
    schema: {
      tags: ['conversations'],
      summary: 'Copy a conversation, through one of its messages, into a new one',
      description: 'A snapshot of one version of the source: its messages through messageId (all without it), its metadata and its ' +
        'workflow state. Forking into another user needs the admin role.',
      params: ConversationParamsSchema,
      body: ForkBodySchema,
      response: { 201: ConversationSchema, ...errorResponses(400, 401, 404, 409, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { caller } = request
    const { id = crypto.randomUUID(), ...options } = request.body
    const snapshot = await store.snapshot(request.params.id, options.messageId, caller.reach)
    if (snapshot === undefined) throw new ConversationNotFoundError(request.params.id)
    const record = forkRecord(snapshot, options)
    const { userId, tenantId } = record.fields
    request.auditFacts = { conversationId: id, tenantId }
    if (userId !== snapshot.conversation.userId && !caller.roles.has('admin')) {
      throw new ForbiddenError(`Caller '${caller.name}' lacks the admin role, which a fork into another user needs`)
    }
    assertMayPlace(caller, { userId, tenantId })
    // 'create' never skips: an existing id is CONVERSATION_EXISTS.
    const { conversation } = await store.restore(id, record, 'create') as { conversation: TaggedConversation }
    return reply.code(201)
      .header('location', `/v1/conversations/${encodeURIComponent(id)}`)
      .headers(versionHeaders(conversation))
      .send(conversation)
  })
}

export default forkRoutes
