import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { noneMatchHits, preconditionsFrom, versionHeaders } from '../src/http/preconditions.js'
import { ConversationParamsSchema, errorResponses, PreconditionHeadersSchema, ReadHeadersSchema, ReplaceHeadersSchema, WorkflowStateSchema, WorkflowStateBodySchema } from '../src/schemas.js'

const tags = ['workflow state']

const workflowStateRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore

  fastify.get('/conversations/:id/workflow-state', {
    schema: {
      tags,
      summary: "Read a conversation's workflow state",
      params: ConversationParamsSchema,
      headers: ReadHeadersSchema,
      response: { 200: WorkflowStateSchema, 304: z.null().meta({ description: 'Not modified' }), ...errorResponses(400, 401, 404, 500, 503) }
    }
  }, async (request, reply) => {
    const state = await store.getWorkflowState(request.params.id, request.caller.reach)
    reply.headers(versionHeaders(state))
    if (noneMatchHits(request.headers['if-none-match'], state.etag)) return reply.code(304).send(null)
    return reply.send(state)
  })

  fastify.put('/conversations/:id/workflow-state', {
    config: { audit: 'workflow-state.replace' },
    schema: {
      tags,
      summary: "Create or replace a conversation's workflow state",
      params: ConversationParamsSchema,
      headers: ReplaceHeadersSchema,
      body: WorkflowStateBodySchema,
      response: { 200: WorkflowStateSchema, 201: WorkflowStateSchema, ...errorResponses(400, 401, 404, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { state, created } = await store.putWorkflowState(request.params.id, request.body, preconditionsFrom(request.headers), request.caller.reach)
    return reply.code(created ? 201 : 200).headers(versionHeaders(state)).send(state)
  })

  fastify.delete('/conversations/:id/workflow-state', {
    config: { audit: 'workflow-state.delete' },
    schema: {
      tags,
      summary: "Delete a conversation's workflow state",
      params: ConversationParamsSchema,
      headers: PreconditionHeadersSchema,
      response: { 204: z.null().meta({ description: 'Deleted' }), ...errorResponses(400, 401, 404, 412, 500, 503) }
    }
  }, async (request, reply) => {
    const { position } = await store.deleteWorkflowState(request.params.id, preconditionsFrom(request.headers), request.caller.reach)
    return reply.code(204).header('last-event-id', position).send(null)
  })
}

export default workflowStateRoutes
