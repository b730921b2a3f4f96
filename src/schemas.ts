import { z } from 'zod'

// One source of truth: these schemas give the TypeScript types, request validation,
// response serialisation and the OpenAPI document.

const ID_PATTERN = /^[A-Za-z0-9._:-]+$/
// No whitespace, no control characters, no braces (braces would break Redis hash tags).
const PRINCIPAL_PATTERN = /^[^\s\p{Cc}{}]+$/u

export const ConversationIdSchema = z.string().min(1).max(128).regex(ID_PATTERN)
  .meta({ description: '1–128 characters from [A-Za-z0-9._:-]', example: 'conv-42' })
export const MessageIdSchema = z.string().min(1).max(128).regex(ID_PATTERN)
export const UserIdSchema = z.string().min(1).max(256).regex(PRINCIPAL_PATTERN)
  .meta({ description: '1–256 characters, no whitespace, control characters or braces', example: 'user-1' })
export const TenantIdSchema = z.string().min(1).max(256).regex(PRINCIPAL_PATTERN)

const JsonObject = z.record(z.string(), z.unknown())
const Timestamp = z.iso.datetime({ offset: true })
  .meta({ description: 'ISO-8601; stored and returned in UTC with milliseconds' })

export const ConversationStatusSchema = z.enum(['active', 'completed', 'abandoned'])
export const MessageRoleSchema = z.enum(['user', 'assistant', 'system', 'tool'])
export const MessageKindSchema = z.enum(['text', 'adaptiveCard'])

export const MessageInputSchema = z.strictObject({
  id: MessageIdSchema.optional(),
  role: MessageRoleSchema,
  kind: MessageKindSchema.default('text'),
  text: z.string().optional(),
  cardJson: JsonObject.optional(),
  cardId: z.string().min(1).max(256).optional(),
  metadata: JsonObject.optional(),
  createdAt: Timestamp.optional()
}).meta({ id: 'NewMessage' })

export const MessageSchema = z.strictObject({
  id: MessageIdSchema,
  role: MessageRoleSchema,
  kind: MessageKindSchema,
  text: z.string().optional(),
  cardJson: JsonObject.optional(),
  cardId: z.string().optional(),
  metadata: JsonObject.optional(),
  createdAt: z.string()
}).meta({ id: 'Message' })

function uniqueMessageIds (messages: Array<{ id?: string | undefined }>): boolean {
  const ids = messages.flatMap((message) => message.id === undefined ? [] : [message.id])
  return new Set(ids).size === ids.length
}

const MessageList = z.array(MessageInputSchema)
  .refine(uniqueMessageIds, { message: 'message ids must be unique within a conversation' })

// The fields a client may write with POST and PUT.
const writableFields = {
  userId: UserIdSchema,
  tenantId: TenantIdSchema.default('default'),
  title: z.string().max(200).optional(),
  status: ConversationStatusSchema.default('active'),
  messages: MessageList.default([]),
  workflowId: z.string().min(1).max(256).optional(),
  currentStep: z.number().int().min(0).optional(),
  stepData: JsonObject.optional(),
  metadata: JsonObject.optional()
}

export const CreateConversationBodySchema = z.strictObject({ id: ConversationIdSchema.optional(), ...writableFields })
  .meta({ id: 'CreateConversation' })
export const ReplaceConversationBodySchema = z.strictObject({
  id: ConversationIdSchema.optional().meta({ description: 'Optional; when present it must equal the id in the path' }),
  ...writableFields
}).meta({ id: 'ReplaceConversation' })

// JSON merge patch (RFC 7396): null removes an optional field; objects merge recursively.
export const PatchConversationBodySchema = z.strictObject({
  title: z.string().max(200).nullable().optional(),
  status: ConversationStatusSchema.optional(),
  workflowId: z.string().min(1).max(256).nullable().optional(),
  currentStep: z.number().int().min(0).nullable().optional(),
  stepData: JsonObject.nullable().optional(),
  metadata: JsonObject.nullable().optional()
}).meta({ id: 'PatchConversation' })

export const AppendMessagesBodySchema = z.strictObject({
  messages: z.array(MessageInputSchema).min(1).max(100)
}).meta({ id: 'AppendMessages' })

const conversationFields = {
  id: ConversationIdSchema,
  userId: UserIdSchema,
  tenantId: TenantIdSchema,
  title: z.string().optional(),
  status: ConversationStatusSchema,
  workflowId: z.string().optional(),
  currentStep: z.number().int().optional(),
  stepData: JsonObject.optional(),
  metadata: JsonObject.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  expiresAt: z.string(),
  version: z.number().int().min(1)
}

export const ConversationSchema = z.strictObject({ ...conversationFields, messages: z.array(MessageSchema) })
  .meta({ id: 'Conversation' })
export const ConversationSummarySchema = z.strictObject({ ...conversationFields, messageCount: z.number().int().min(0) })
  .meta({ id: 'ConversationSummary' })

export const AppendResultSchema = z.strictObject({
  appended: z.number().int().min(0),
  skipped: z.number().int().min(0),
  version: z.number().int().min(1),
  messageCount: z.number().int().min(0)
}).meta({ id: 'AppendResult' })

export const ListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(1024).optional().meta({ description: 'Opaque; copy nextCursor from the previous page' }),
  view: z.enum(['full', 'summary']).default('full'),
  tenantId: TenantIdSchema.optional()
})

// One item shape for both views, rather than a union: a union makes the response
// serialiser test every item against each branch, which the benchmark showed to cost
// more than the rest of a list (bench/README.md).
export const ConversationListItemSchema = z.strictObject({
  ...conversationFields,
  messages: z.array(MessageSchema).optional().meta({ description: 'In the full view' }),
  messageCount: z.number().int().min(0).optional().meta({ description: 'In the summary view, instead of messages' })
}).meta({ id: 'ConversationListItem' })

export const ConversationPageSchema = z.strictObject({
  items: z.array(ConversationListItemSchema),
  nextCursor: z.string().nullable()
}).meta({ id: 'ConversationPage' })

export const DeleteUserResultSchema = z.strictObject({ deleted: z.number().int().min(0) })

const workflowStateFields = {
  step: z.string().min(1).max(256),
  turnCount: z.number().int().min(0),
  status: z.enum(['active', 'completed', 'error']),
  collectedData: JsonObject.optional(),
  lastRecommendation: z.string().optional(),
  currentPhase: z.string().optional(),
  progress: z.number().min(0).max(1).nullable().optional(),
  suggestedInputType: z.enum(['text', 'choice', 'confirmation', 'none']).optional(),
  choices: z.array(z.string()).optional()
}

export const WorkflowStateBodySchema = z.strictObject(workflowStateFields).meta({ id: 'WorkflowStateBody' })
export const WorkflowStateSchema = z.strictObject({
  ...workflowStateFields,
  conversationId: ConversationIdSchema,
  version: z.number().int().min(1),
  updatedAt: z.string(),
  expiresAt: z.string()
}).meta({ id: 'WorkflowState' })

export const ConversationParamsSchema = z.strictObject({ id: ConversationIdSchema })
export const UserParamsSchema = z.strictObject({ userId: UserIdSchema })

// An entity tag list as in RFC 9110: `*`, or comma-separated `"v"` / `W/"v"`.
const ENTITY_TAGS = /^\s*(\*|(W\/)?"[^"]*"(\s*,\s*(W\/)?"[^"]*")*)\s*$/
export const PreconditionHeadersSchema = z.looseObject({
  'if-match': z.string().regex(ENTITY_TAGS).optional()
    .meta({ description: 'Write only if the current ETag is one of these, or `*` for any existing version' })
})
export const ReplaceHeadersSchema = z.looseObject({
  'if-match': PreconditionHeadersSchema.shape['if-match'],
  'if-none-match': z.literal('*').optional().meta({ description: '`*` makes the PUT create-only' })
})
export const ReadHeadersSchema = z.looseObject({
  'if-none-match': z.string().regex(ENTITY_TAGS).optional()
})

export const HealthSchema = z.object({
  status: z.enum(['ok', 'unavailable']),
  backend: z.enum(['memory', 'redis']),
  store: z.looseObject({ status: z.enum(['up', 'down']), latencyMs: z.number().optional() })
}).meta({ id: 'Health' })

export const ErrorBodySchema = z.object({
  statusCode: z.number().int(),
  code: z.string(),
  error: z.string(),
  message: z.string()
}).meta({ id: 'Error' })

export type MessageInput = z.output<typeof MessageInputSchema>
export type Message = z.output<typeof MessageSchema>
export type CreateConversationBody = z.output<typeof CreateConversationBodySchema>
export type ReplaceConversationBody = z.output<typeof ReplaceConversationBodySchema>
export type ConversationFields = Omit<CreateConversationBody, 'id'>
export type PatchConversationBody = z.output<typeof PatchConversationBodySchema>
export type Conversation = z.output<typeof ConversationSchema>
export type ConversationSummary = z.output<typeof ConversationSummarySchema>
export type AppendResult = z.output<typeof AppendResultSchema>
export type ListQuery = z.output<typeof ListQuerySchema>
export type WorkflowStateBody = z.output<typeof WorkflowStateBodySchema>
export type WorkflowState = z.output<typeof WorkflowStateSchema>
export type Health = z.output<typeof HealthSchema>

/** Response schemas for the error statuses a route can answer with. */
export function errorResponses<const S extends number> (...statuses: S[]): Record<S, typeof ErrorBodySchema> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBodySchema])) as Record<S, typeof ErrorBodySchema>
}
