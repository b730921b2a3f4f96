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
])

export type FeedEventData = z.output<typeof FeedEventDataSchema>
export type FeedEventType = FeedEventData['type']
