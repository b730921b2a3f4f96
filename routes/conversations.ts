import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { assertMayPlace } from '../src/auth/caller.js'
import { assertTtlWithin } from '../src/store/conversation-rules.js'
import { ConversationNotFoundError, InvalidRequestError } from '../src/errors.js'
import { noneMatchHits, preconditionsFrom, versionHeaders } from '../src/http/preconditions.js'
import {
  ConversationListItemSchema, ConversationQuerySchema, ConversationSchema, ConversationParamsSchema, CreateConversationBodySchema, errorResponses,
  PatchConversationBodySchema, PreconditionHeadersSchema, ReadHeadersSchema, ReplaceConversationBodySchema, ReplaceHeadersSchema
} from '../src/schemas.js'
import { z } from 'zod'

const tags = ['conversations']

const conversationRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const { maxTtlSeconds } = fastify.config
  // The bound is the operator's (MAX_TTL_SECONDS), so it is checked here rather than in the schema.
  const assertTtl = (body: { ttlSeconds?: number | null | undefined }): void => { assertTtlWithin(body, maxTtlSeconds, 'body/ttlSeconds') }

  fastify.post('/conversations', {
    config: { audit: 'conversation.create' },
    schema: {
      tags,
      summary: 'Create a conversation',
      body: CreateConversationBodySchema,
      response: { 201: ConversationSchema, ...errorResponses(400, 401, 409, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { id = crypto.randomUUID(), ...fields } = request.body
    request.auditFacts = { conversationId: id, tenantId: fields.tenantId }
    assertTtl(fields)
    assertMayPlace(request.caller, fields)
    const conversation = await store.create(id, fields)
    return reply.code(201)
      .header('location', `/v1/conversations/${encodeURIComponent(id)}`)
      .headers(versionHeaders(conversation))
      .send(conversation)
  })

  fastify.get('/conversations/:id', {
    schema: {
      tags,
      summary: 'Read a conversation: with all its messages, the newest N (lastMessages), or none (view=summary)',
      params: ConversationParamsSchema,
      querystring: ConversationQuerySchema,
      headers: ReadHeadersSchema,
      response: { 200: ConversationListItemSchema, 304: z.null().meta({ description: 'Not modified' }), ...errorResponses(400, 401, 404, 500, 503) }
    }
  }, async (request, reply) => {
    const { view, lastMessages } = request.query
    if (view === 'summary' && lastMessages !== undefined) throw new InvalidRequestError('querystring/lastMessages does not go with view=summary')
    const selection = view === 'summary' ? 'none' : lastMessages === undefined ? 'all' : { last: lastMessages }
    const conversation = await store.get(request.params.id, selection, request.caller.reach)
    if (conversation === undefined) throw new ConversationNotFoundError(request.params.id)
    reply.headers(versionHeaders(conversation))
    if (noneMatchHits(request.headers['if-none-match'], conversation.etag)) return reply.code(304).send(null)
    return conversation
  })

  fastify.put('/conversations/:id', {
    config: { audit: 'conversation.replace' },
    schema: {
      tags,
      summary: 'Create or replace a conversation, messages included',
      params: ConversationParamsSchema,
      headers: ReplaceHeadersSchema,
      body: ReplaceConversationBodySchema,
      response: { 200: ConversationSchema, 201: ConversationSchema, ...errorResponses(400, 401, 409, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { id, ...fields } = request.body
    if (id !== undefined && id !== request.params.id) {
      throw new InvalidRequestError('body/id must equal the id in the path')
    }
    request.auditFacts = { tenantId: fields.tenantId }
    assertTtl(fields)
    assertMayPlace(request.caller, fields)
    const { conversation, created } = await store.put(request.params.id, fields, preconditionsFrom(request.headers), request.caller.reach)
    if (created) reply.code(201).header('location', `/v1/conversations/${encodeURIComponent(conversation.id)}`)
    return reply.headers(versionHeaders(conversation)).send(conversation)
  })

  fastify.patch('/conversations/:id', {
    config: { audit: 'conversation.patch' },
    schema: {
      tags,
      summary: 'Change fields with a JSON merge patch (RFC 7396)',
      params: ConversationParamsSchema,
      headers: PreconditionHeadersSchema,
      body: PatchConversationBodySchema,
      response: { 200: ConversationSchema, ...errorResponses(400, 401, 404, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    assertTtl(request.body)
    const conversation = await store.patch(request.params.id, request.body, preconditionsFrom(request.headers), request.caller.reach)
    request.auditFacts = { tenantId: conversation.tenantId }
    return reply.headers(versionHeaders(conversation)).send(conversation)
  })

  fastify.delete('/conversations/:id', {
    config: { audit: 'conversation.delete' },
    schema: {
      tags,
      summary: 'Delete a conversation and its workflow state',
      params: ConversationParamsSchema,
      headers: PreconditionHeadersSchema,
      response: { 204: z.null().meta({ description: 'Deleted' }), ...errorResponses(400, 401, 404, 412, 500, 503) }
    }
  }, async (request, reply) => {
    await store.delete(request.params.id, preconditionsFrom(request.headers), request.caller.reach)
    return reply.code(204).send(null)
  })
}

export default conversationRoutes
