import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { DeltaTooLargeError, InvalidRequestError } from '../src/errors.js'
import { DeltaBodySchema, DeltaResultSchema } from '../src/stream-schemas.js'
import { decodeMessageCursor, encodeMessageCursor } from '../src/http/cursor.js'
import { appendBody, pageBody } from '../src/http/message-bodies.js'
import { preconditionsFrom, versionHeaders } from '../src/http/preconditions.js'
import {
  AppendMessagesBodySchema, AppendQuerySchema, AppendResultSchema, ConversationParamsSchema, errorResponses, MessageListQuerySchema, MessagePageSchema,
  MessageParamsSchema, MessageSchema, PatchMessageBodySchema, PreconditionHeadersSchema, RewindQuerySchema, RewindResultSchema
} from '../src/schemas.js'
import { MAX_WINDOW_MESSAGES, type MessageQuery, type WindowRequest } from '../src/store/types.js'

const tags = ['messages']
const DEFAULT_PAGE = 100

/** A conversation's messages as a resource: append, page, context window, read, edit, delete. */
const messageRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const { maxDeltaChars } = fastify.config

  fastify.post('/conversations/:id/messages', {
    config: { audit: 'messages.append' },
    schema: {
      tags,
      summary: 'Append messages; ids already used are skipped, so retries are safe. With ?window or ?lastMessages, also the context after the append',
      params: ConversationParamsSchema,
      querystring: AppendQuerySchema,
      headers: PreconditionHeadersSchema,
      body: AppendMessagesBodySchema,
      response: { 200: AppendResultSchema, 201: AppendResultSchema, ...errorResponses(400, 401, 404, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const result = await store.appendMessages(request.params.id, request.body.messages, preconditionsFrom(request.headers),
      request.caller.reach, windowRequest(request.query))
    return reply.code(result.appended > 0 ? 201 : 200).headers(versionHeaders(result)).send(appendBody(result))
  })

  fastify.get('/conversations/:id/messages', {
    schema: {
      tags,
      summary: 'A page of messages by cursor, or with maxTokens the newest that fit in a context window',
      params: ConversationParamsSchema,
      querystring: MessageListQuerySchema,
      response: { 200: MessagePageSchema, ...errorResponses(400, 401, 404, 500, 503) }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const query = messageQuery(id, request.query)
    const page = await store.listMessages(id, query, request.caller.reach)
    reply.header('last-event-id', page.position)
    return pageBody({
      items: page.items,
      nextCursor: page.next === null ? null : encodeMessageCursor(id, query.order, page.next),
      messageCount: page.messageCount,
      ...(page.totalTokens === undefined ? {} : { totalTokens: page.totalTokens })
    })
  })

  fastify.delete('/conversations/:id/messages', {
    config: { audit: 'messages.rewind' },
    schema: {
      tags,
      summary: 'Rewind: delete every message after one, in one write; their ids stay used',
      params: ConversationParamsSchema,
      querystring: RewindQuerySchema,
      headers: PreconditionHeadersSchema,
      response: { 200: RewindResultSchema, ...errorResponses(400, 401, 404, 412, 500, 503) }
    }
  }, async (request, reply) => {
    const result = await store.rewindMessages(request.params.id, request.query.after, preconditionsFrom(request.headers), request.caller.reach)
    return reply.headers(versionHeaders(result)).send(result)
  })

  fastify.get('/conversations/:id/messages/:messageId', {
    schema: {
      tags,
      summary: 'Read one message',
      params: MessageParamsSchema,
      response: { 200: MessageSchema, ...errorResponses(400, 401, 404, 500, 503) }
    }
  }, async (request, reply) => {
    const { message, position } = await store.getMessage(request.params.id, request.params.messageId, request.caller.reach)
    return reply.header('last-event-id', position).send(message)
  })

  fastify.patch('/conversations/:id/messages/:messageId', {
    config: { audit: 'message.edit' },
    schema: {
      tags,
      summary: "Edit a message with a JSON merge patch, or finish or stop a streamed one with status: a write to its conversation (If-Match on the conversation's ETag)",
      params: MessageParamsSchema,
      headers: PreconditionHeadersSchema,
      body: PatchMessageBodySchema,
      response: { 200: MessageSchema, ...errorResponses(400, 401, 404, 409, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { id, messageId } = request.params
    const { message, ...tags } = await store.patchMessage(id, messageId, request.body, preconditionsFrom(request.headers), request.caller.reach)
    return reply.headers(versionHeaders(tags)).send(message)
  })

  fastify.post('/conversations/:id/messages/:messageId/deltas', {
    config: { audit: 'message.delta' },
    schema: {
      tags,
      summary: 'Add text to an in_progress message: a write to its conversation. A seq already applied with the same text changes nothing',
      params: MessageParamsSchema,
      headers: PreconditionHeadersSchema,
      body: DeltaBodySchema,
      response: { 200: DeltaResultSchema, ...errorResponses(400, 401, 404, 409, 412, 413, 415, 500, 503) }
    }
  }, async (request, reply) => {
    const { id, messageId } = request.params
    if (request.body.text.length > maxDeltaChars) throw new DeltaTooLargeError(maxDeltaChars)
    const { etag, position, ...result } = await store.appendDelta(id, messageId, request.body, preconditionsFrom(request.headers), request.caller.reach)
    return reply.headers(versionHeaders({ etag, position })).send(result)
  })

  fastify.delete('/conversations/:id/messages/:messageId', {
    config: { audit: 'message.delete' },
    schema: {
      tags,
      summary: 'Delete a message; its id stays used, so a retried append cannot bring it back',
      params: MessageParamsSchema,
      headers: PreconditionHeadersSchema,
      response: { 204: z.null().meta({ description: 'Deleted' }), ...errorResponses(400, 401, 404, 412, 500, 503) }
    }
  }, async (request, reply) => {
    const { id, messageId } = request.params
    const tags = await store.deleteMessage(id, messageId, preconditionsFrom(request.headers), request.caller.reach)
    return reply.code(204).headers(versionHeaders(tags)).send(null)
  })
}

/** The window an append answers, if any: by tokens or by count, not both. */
function windowRequest ({ window, lastMessages }: z.output<typeof AppendQuerySchema>): WindowRequest | undefined {
  if (window !== undefined && lastMessages !== undefined) throw new InvalidRequestError('querystring/window and querystring/lastMessages do not go together')
  if (window !== undefined) return { maxTokens: window }
  return lastMessages === undefined ? undefined : { last: lastMessages }
}

/** The store query of a message list request; maxTokens goes with order=desc and no cursor only. */
function messageQuery (id: string, { limit, order = 'asc', cursor, maxTokens }: z.output<typeof MessageListQuerySchema>): MessageQuery {
  if (maxTokens !== undefined) {
    if (order !== 'desc') throw new InvalidRequestError('querystring/maxTokens needs order=desc')
    if (cursor !== undefined) throw new InvalidRequestError('querystring/cursor does not go with maxTokens: a context window has no next page')
    return { order, limit: limit ?? MAX_WINDOW_MESSAGES, maxTokens }
  }
  const query: MessageQuery = { order, limit: limit ?? DEFAULT_PAGE }
  if (cursor !== undefined) query.after = decodeMessageCursor(cursor, id, order)
  return query
}

export default messageRoutes
