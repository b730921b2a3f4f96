import { z } from 'zod'
import { ConversationSummarySchema, MessageSchema, WorkflowStateSchema } from './schemas.js'

// The data of the events of a conversation's feed (GET /v1/conversations/:id/events; the
// service writes it in src/store/events.ts): `type`, `conversationId`, `version` (the
// conversation's version after the change), then the type's own fields. The client package
// compiles this file into its tarball and parses each event with it, so like schemas.ts it
// imports nothing but zod and schemas.ts (test/client-package.test.ts checks the tarball).

const head = {
  conversationId: z.string().min(1),
  version: z.number().int().min(0)
}

const event = <T extends string, F extends z.core.$ZodLooseShape>(type: T, fields: F) =>
  z.strictObject({ type: z.literal(type), ...head, ...fields })

const MessageFields = { message: MessageSchema }

export const FeedEventDataSchema = z.discriminatedUnion('type', [
  event('message.created', MessageFields),
  event('message.delta', { messageId: z.string().min(1), seq: z.number().int().min(1), text: z.string() }),
  event('message.updated', MessageFields),
  event('message.deleted', { messageId: z.string().min(1) }),
  event('conversation.updated', { conversation: ConversationSummarySchema }),
  event('workflow_state.updated', { workflowState: WorkflowStateSchema }),
  event('workflow_state.deleted', {}),
  // The last event of a feed: the service ends the stream after it.
  event('conversation.deleted', {}),
  // The position asked for is older than what the service keeps: re-read, then go on from its id.
  event('reset', {})
]).meta({ id: 'ConversationFeedEventData', description: 'The data of each event of GET /v1/conversations/{id}/events' })

export type FeedEventData = z.output<typeof FeedEventDataSchema>
export type FeedEventType = FeedEventData['type']

// The data of the events of a user's feed (GET /v1/users/:userId/events): one event per
// write of one of the user's conversations (deltas excepted), with the conversation as it
// is after the write, so that a sidebar applies each as an upsert or a removal.
const ConversationFields = { conversation: ConversationSummarySchema }

export const UserFeedEventDataSchema = z.discriminatedUnion('type', [
  event('conversation.created', ConversationFields),
  event('conversation.updated', ConversationFields),
  event('conversation.deleted', { tenantId: z.string().min(1) }),
  // The position asked for is older than what the service keeps: list the user's conversations again, then go on from its id.
  z.strictObject({ type: z.literal('reset'), userId: z.string().min(1) })
]).meta({ id: 'UserFeedEventData', description: 'The data of each event of GET /v1/users/{userId}/events' })

export type UserFeedEventData = z.output<typeof UserFeedEventDataSchema>
export type UserFeedEventType = UserFeedEventData['type']
