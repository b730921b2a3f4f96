import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { FeedsFullError, ForbiddenError } from '../src/errors.js'
import { EventFeedWriter } from '../src/http/event-feed.js'
import { canFollowUser } from '../src/store/conversation-rules.js'
import { ConversationParamsSchema, errorResponses, UserParamsSchema } from '../src/schemas.js'
import '../src/event-schemas.js'
import { EVENT_TYPES, USER_EVENT_TYPES, type FeedEvent, type Following } from '../src/store/events.js'

const PositionSchema = z.string().min(1).max(300)

/** The schema of a feed: its events' data is a component (src/event-schemas.ts), named from the stream's answer. */
const resumable = (data: 'ConversationFeedEventData' | 'UserFeedEventData', ...errors: number[]) => ({
  querystring: z.strictObject({ after: PositionSchema.optional().meta({ description: 'A position, as the Last-Event-ID header gives it' }) }),
  headers: z.looseObject({ 'last-event-id': PositionSchema.optional() }),
  response: {
    200: z.string().meta({ description: `text/event-stream; the data of each event is JSON, as ${data} describes`, 'x-event-data': { $ref: `#/components/schemas/${data}` } }),
    ...errorResponses(...errors)
  }
})

type Follow = (after: string | undefined, listener: (event: FeedEvent | null) => void) => Promise<Following>

/** Conversations' and users' changes as server-sent events, resumable from any position still kept. */
const eventRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const feeds = fastify.eventFeeds
  // The handler always streams (no Accept negotiation); the data of each event is JSON text already.
  const sse = { kind: 'manual', serializer: (data: unknown) => data as string } as const

  /** Streams one feed to the request, within the instance's bound on open streams. */
  async function stream (request: FastifyRequest, reply: FastifyReply, after: string | undefined, follow: Follow, userFeed: boolean): Promise<void> {
    const writer = new EventFeedWriter(reply, request.caller.reach, fastify.config.eventsRetained, () => { feeds.leave(end) }, userFeed)
    const end = (): void => { writer.end() }
    if (!feeds.admit(end)) throw new FeedsFullError(feeds.maxConnections)
    try {
      writer.start(await follow(after, (event) => { writer.push(event) }))
    } catch (error) {
      writer.end()
      throw error
    }
  }

  fastify.get('/conversations/:id/events', {
    sse,
    schema: {
      tags: ['events'],
      summary: 'Follow a conversation: one server-sent event per change, from a position on (Last-Event-ID or ?after=), else from the next change',
      description: `Each event has an opaque \`id\` in the conversation's write order, an \`event\` type (${EVENT_TYPES.join(', ')}, or reset) ` +
        'and JSON `data` with type, conversationId, version and the type\'s fields. A position older than what is kept gets one reset ' +
        'event (re-read, then go on); conversation.deleted ends the stream. Every answer about the conversation carries the Last-Event-ID to resume from.',
      params: ConversationParamsSchema,
      ...resumable('ConversationFeedEventData', 400, 401, 403, 404, 500, 503)
    }
  }, async (request, reply) => {
    const after = request.headers['last-event-id'] ?? request.query.after
    await stream(request, reply, after, async (from, listener) => await store.follow(request.params.id, from, request.caller.reach, listener), false)
  })

  fastify.get('/users/:userId/events', {
    sse,
    schema: {
      tags: ['events'],
      summary: "Follow a user's conversations: one server-sent event per write of one of them (deltas excepted), from a position on, else from the next write",
      description: `Each event has an opaque \`id\` in the feed's order, an \`event\` type (${USER_EVENT_TYPES.join(', ')}, or reset) and JSON \`data\` ` +
        'with type, conversationId, version, and the conversation without its messages (a deleted one: its tenantId). Events about conversations ' +
        'out of the caller\'s reach are left out. A position older than what is kept gets one reset event (list again, then go on). ' +
        'The list of the user\'s conversations carries the Last-Event-ID to resume from; a delegated token follows only its own user.',
      params: UserParamsSchema,
      ...resumable('UserFeedEventData', 400, 401, 403, 500, 503)
    }
  }, async (request, reply) => {
    const { userId } = request.params
    const { reach, name } = request.caller
    if (!canFollowUser(reach, userId)) throw new ForbiddenError(`Caller '${name}' acts for one user and may not follow another user's feed`)
    const after = request.headers['last-event-id'] ?? request.query.after
    await stream(request, reply, after, async (from, listener) => await store.followUser(userId, from, listener), true)
  })
}

export default eventRoutes
