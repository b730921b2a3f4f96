import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { etagOf, preconditionsFrom } from '../src/http/preconditions.js'
import { ConversationParamsSchema, errorResponses, PreconditionHeadersSchema, ReplaceHeadersSchema, WorkflowStateSchema, WorkflowStateBodySchema } from '../src/schemas.js'

const tags = ['workflow state']

const workflowStateRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.get('/conversations/:id/workflow-state', {
    schema: {
      tags,
      summary: "Read a conversation's workflow state",
      params: ConversationParamsSchema,
      response: { 200: WorkflowStateSchema, ...errorResponses(400, 401, 404, 503) }
    }
  }, async (request, reply) => {
    const state = await store.getWorkflowState(request.params.id)
    return reply.header('etag', etagOf(state.version)).send(state)
  })

  fastify.put('/conversations/:id/workflow-state', {
    schema: {
      tags,
      summary: "Create or replace a conversation's workflow state",
      params: ConversationParamsSchema,
      headers: ReplaceHeadersSchema,
      body: WorkflowStateBodySchema,
      response: { 200: WorkflowStateSchema, 201: WorkflowStateSchema, ...errorResponses(400, 401, 404, 412, 413, 503) }
    }
  }, async (request, reply) => {
    const { state, created } = await store.putWorkflowState(request.params.id, request.body, preconditionsFrom(request.headers))
    return reply.code(created ? 201 : 200).header('etag', etagOf(state.version)).send(state)
  })

  fastify.delete('/conversations/:id/workflow-state', {
    schema: {
      tags,
      summary: "Delete a conversation's workflow state",
      params: ConversationParamsSchema,
      headers: PreconditionHeadersSchema,
      response: { 204: z.null().meta({ description: 'Deleted' }), ...errorResponses(400, 401, 404, 412, 503) }
    }
  }, async (request, reply) => {
    await store.deleteWorkflowState(request.params.id, preconditionsFrom(request.headers))
    return reply.code(204).send(null)
  })
}

export default workflowStateRoutes
