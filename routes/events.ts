import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { FeedsFullError } from '../src/errors.js'
import { EventFeedWriter } from '../src/http/event-feed.js'
import { ConversationParamsSchema, errorResponses } from '../src/schemas.js'
import { EVENT_TYPES } from '../src/store/events.js'

const PositionSchema = z.string().min(1).max(300)

/** A conversation's changes as server-sent events, resumable from any position still kept. */
const eventRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const feeds = fastify.eventFeeds

  fastify.get('/conversations/:id/events', {
    // The handler always streams (no Accept negotiation); the data of each event is JSON text already.
    sse: { kind: 'manual', serializer: (data: unknown) => data as string },
    schema: {
      tags: ['events'],
      summary: 'Follow a conversation: one server-sent event per change, from a position on (Last-Event-ID or ?after=), else from the next change',
      description: `Each event has an opaque \`id\` in the conversation's write order, an \`event\` type (${EVENT_TYPES.join(', ')}, or reset) ` +
        'and JSON `data` with type, conversationId, version and the type\'s fields. A position older than what is kept gets one reset ' +
        'event (re-read, then go on); conversation.deleted ends the stream. Every answer about the conversation carries the Last-Event-ID to resume from.',
      params: ConversationParamsSchema,
      querystring: z.strictObject({ after: PositionSchema.optional().meta({ description: 'A position, as the Last-Event-ID header gives it' }) }),
      headers: z.looseObject({ 'last-event-id': PositionSchema.optional() }),
      response: { 200: z.string().meta({ description: 'text/event-stream' }), ...errorResponses(400, 401, 404, 500, 503) }
    }
  }, async (request, reply) => {
    const after = request.headers['last-event-id'] ?? request.query.after
    const writer = new EventFeedWriter(reply, request.caller.reach, fastify.config.eventsRetained, () => { feeds.leave(end) })
    const end = (): void => { writer.end() }
    if (!feeds.admit(end)) throw new FeedsFullError(feeds.maxConnections)
    try {
      writer.start(await store.follow(request.params.id, after, request.caller.reach, (event) => { writer.push(event) }))
    } catch (error) {
      writer.end()
      throw error
    }
  })
}

export default eventRoutes
