import { z } from 'zod'
import { MessageStatusSchema, reasonMatchesStatus, REASON_RULE, StatusReasonSchema, statusFields } from './stream-schemas.js'

// One source of truth: these schemas give the TypeScript types, request validation,
// response serialisation and the OpenAPI document. The client package (packages/client)
// compiles this file into its tarball, so it must import nothing but zod and the schemas of
// streamed messages, stream-schemas.ts, which the tarball holds too
// (test/client-package.test.ts checks what the tarball holds).

// Ids travel in URL paths, so `.` and `..` are refused: URL parsers (fetch, browsers,
// proxies) resolve them as dot segments, and such a conversation could never be reached.
const ID_PATTERN = /^(?!\.\.?$)[A-Za-z0-9._:-]+$/
// No whitespace, no control characters, no lone surrogates (Redis keys are UTF-8, so two
// such ids would collide), no braces (they would break Redis hash tags), no dot segments.
const PRINCIPAL_PATTERN = /^(?!\.\.?$)[^\s\p{Cc}\p{Cs}{}]+$/u

export const ConversationIdSchema = z.string().min(1).max(128).regex(ID_PATTERN)
  .meta({ description: '1–128 characters from [A-Za-z0-9._:-], other than `.` and `..`', example: 'conv-42' })
export const MessageIdSchema = z.string().min(1).max(128).regex(ID_PATTERN)
export const UserIdSchema = z.string().min(1).max(256).regex(PRINCIPAL_PATTERN)
  .meta({ description: '1–256 characters, no whitespace, control characters, lone surrogates or braces, other than `.` and `..`', example: 'user-1' })
export const TenantIdSchema = z.string().min(1).max(256).regex(PRINCIPAL_PATTERN)

/** How deep free-form JSON (metadata, stepData, cardJson, collectedData) may nest. */
export const MAX_JSON_DEPTH = 64

const JsonObject = z.record(z.string(), z.unknown())
  .refine(isStorableJson, { message: `must nest at most ${MAX_JSON_DEPTH} levels and hold only finite numbers` })
  .meta({ description: `Free-form JSON object, nested at most ${MAX_JSON_DEPTH} levels deep` })
const Timestamp = z.iso.datetime({ offset: true })
  .refine((value) => { const year = new Date(value).getUTCFullYear(); return year >= 0 && year <= 9999 }, { message: 'must fall in the years 0000–9999 in UTC' })
  .meta({ description: 'ISO-8601; stored and returned in UTC with milliseconds' })

/**
 * True when a value nests at most MAX_JSON_DEPTH levels and has no non-finite numbers
 * (JSON.parse reads 1e400 as Infinity, which JSON would store as null). Iterative, so a
 * hostile depth cannot overflow the stack here; deeper values would overflow it later,
 * when serialised.
 */
export function isStorableJson (value: unknown): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next
    if (typeof item === 'number' && !Number.isFinite(item)) return false
    if (typeof item !== 'object' || item === null) continue
    if (depth > MAX_JSON_DEPTH) return false
    for (const child of Object.values(item)) pending.push([child, depth + 1])
  }
  return true
}

/**
 * A whole number in a query string. Query values are text, and z.coerce.number() reads `''`
 * and `' '` as 0 and `'0x10'` as 16; here only decimal digits become a number, and anything
 * else reaches the number schema as text and is refused (400).
 */
const queryInteger = (min: number, max: number) => z.preprocess(
  (value) => typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value,
  z.number({ error: 'must be a whole number in decimal digits' }).int().min(min).max(max)
)

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
  createdAt: Timestamp.optional(),
  ...statusFields
}).refine(reasonMatchesStatus, REASON_RULE).meta({ id: 'NewMessage' })

export const MessageSchema = z.strictObject({
  id: MessageIdSchema,
  role: MessageRoleSchema,
  kind: MessageKindSchema,
  text: z.string().optional(),
  cardJson: JsonObject.optional(),
  cardId: z.string().optional(),
  metadata: JsonObject.optional(),
  createdAt: z.string(),
  // Messages stored before streams existed have no status: they read as completed.
  status: MessageStatusSchema.default('completed'),
  statusReason: z.string().optional()
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
  metadata: JsonObject.optional(),
  ttlSeconds: z.number().int().min(1).optional()
    .meta({ description: 'How long the conversation lives after each write, in seconds: at most MAX_TTL_SECONDS (90 days by default); REDIS_TTL when absent' })
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
  metadata: JsonObject.nullable().optional(),
  ttlSeconds: z.number().int().min(1).nullable().optional().meta({ description: '`null` returns to REDIS_TTL' })
}).meta({ id: 'PatchConversation' })

export const AppendMessagesBodySchema = z.strictObject({
  messages: z.array(MessageInputSchema).min(1).max(100)
}).meta({ id: 'AppendMessages' })

/** Where a fork came from: the source, the last message it copied (null: none), and its version. */
export const ForkedFromSchema = z.strictObject({
  conversationId: ConversationIdSchema,
  messageId: MessageIdSchema.nullable(),
  version: z.number().int().min(1)
}).meta({ id: 'ForkedFrom' })

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
  ttlSeconds: z.number().int().min(1).optional().meta({ description: 'Only when the conversation has a TTL of its own' }),
  forkedFrom: ForkedFromSchema.optional().meta({ description: 'Only on a fork: its source, the last message it copied and the version copied' }),
  createdAt: z.string(),
  updatedAt: z.string(),
  expiresAt: z.string(),
  version: z.number().int().min(1)
}

export const ConversationSchema = z.strictObject({
  ...conversationFields,
  messages: z.array(MessageSchema),
  messageCount: z.number().int().min(0).meta({ description: 'All messages of the conversation, also when `messages` holds only the newest' })
}).meta({ id: 'Conversation' })
export const ConversationSummarySchema = z.strictObject({ ...conversationFields, messageCount: z.number().int().min(0) })
  .meta({ id: 'ConversationSummary' })

export const ListQuerySchema = z.strictObject({
  limit: queryInteger(1, 200).default(50),
  cursor: z.string().min(1).max(1024).optional().meta({ description: 'Opaque; copy nextCursor from the previous page' }),
  view: z.enum(['full', 'summary']).default('full'),
  tenantId: TenantIdSchema.optional()
})

// One item shape for both views, rather than a union: a union makes the response
// serialiser test every item against each branch, which the benchmark showed to cost
// more than the rest of a list (bench/README.md).
export const ConversationListItemSchema = z.strictObject({
  ...conversationFields,
  messages: z.array(MessageSchema).optional().meta({ description: 'In the full view (and the newest N with lastMessages)' }),
  messageCount: z.number().int().min(0)
}).meta({ id: 'ConversationListItem' })

export const ConversationQuerySchema = z.strictObject({
  view: z.enum(['full', 'summary']).default('full').meta({ description: '`summary`: without messages' }),
  lastMessages: queryInteger(0, 1000).optional()
    .meta({ description: 'Only the newest N messages, oldest first' })
})

export const MessageParamsSchema = z.strictObject({ id: ConversationIdSchema, messageId: MessageIdSchema })

export const MessageListQuerySchema = z.strictObject({
  limit: queryInteger(1, 1000).optional().meta({ description: '1–1000; 100 by default, the page maximum with maxTokens' }),
  order: z.enum(['asc', 'desc']).optional().meta({ description: '`asc` (default): oldest first' }),
  cursor: z.string().min(1).max(1024).optional().meta({ description: 'Opaque; copy nextCursor from the previous page' }),
  maxTokens: queryInteger(1, 10_000_000).optional()
    .meta({ description: 'With order=desc only: the newest messages whose tokens fit, contiguous, without a cursor' })
})

export const RewindQuerySchema = z.strictObject({
  after: MessageIdSchema.meta({ description: 'The message to keep as the newest: every message after it is deleted' })
})

export const RewindResultSchema = z.strictObject({
  deleted: z.number().int().min(0),
  messageCount: z.number().int().min(0),
  version: z.number().int().min(1)
}).meta({ id: 'RewindResult' })

export const MessageWithTokensSchema = MessageSchema.extend({ tokens: z.number().int().min(0).optional() })
  .meta({ id: 'MessageWithTokens' })

/** The query of an append: what to answer besides its result, computed in the same write. */
export const AppendQuerySchema = z.strictObject({
  window: queryInteger(1, 10_000_000).optional()
    .meta({ description: 'Also answer the context window after the append: the newest messages whose tokens fit in N, newest first, as GET …/messages?order=desc&maxTokens=N answers it at that version' }),
  lastMessages: queryInteger(0, 1000).optional()
    .meta({ description: 'Also answer the newest N messages after the append, oldest first, as GET /v1/conversations/:id?lastMessages=N answers them at that version' })
})

export const MessageWindowSchema = z.strictObject({
  items: z.array(MessageWithTokensSchema),
  totalTokens: z.number().int().min(0),
  messageCount: z.number().int().min(0)
}).meta({ id: 'MessageWindow' })

export const AppendResultSchema = z.strictObject({
  appended: z.number().int().min(0),
  skipped: z.number().int().min(0),
  version: z.number().int().min(1),
  messageCount: z.number().int().min(0),
  window: MessageWindowSchema.optional().meta({ description: 'With ?window or ?lastMessages' })
}).meta({ id: 'AppendResult' })

export const MessagePageSchema = z.strictObject({
  items: z.array(MessageWithTokensSchema),
  nextCursor: z.string().nullable(),
  messageCount: z.number().int().min(0),
  totalTokens: z.number().int().min(0).optional().meta({ description: 'With maxTokens: the tokens of the items' })
}).meta({ id: 'MessagePage' })

// JSON merge patch of the fields a message may change after it is written.
export const PatchMessageBodySchema = z.strictObject({
  text: z.string().nullable().optional(),
  cardJson: JsonObject.nullable().optional(),
  cardId: z.string().min(1).max(256).nullable().optional(),
  metadata: JsonObject.nullable().optional(),
  status: z.enum(['completed', 'incomplete']).optional()
    .meta({ description: 'Finishes an `in_progress` message (`completed`), or stops it (`incomplete`, with a statusReason such as `cancelled`)' }),
  statusReason: StatusReasonSchema.optional()
}).refine((patch) => patch.status === undefined ? patch.statusReason === undefined : reasonMatchesStatus(patch), REASON_RULE)
  .meta({ id: 'PatchMessage' })

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
  /** Why the instance is not ready: its store does not answer, or it sheds load. */
  reason: z.enum(['store', 'overloaded']).optional(),
  /** The store check; absent when the instance sheds load and did not check. */
  store: z.looseObject({ status: z.enum(['up', 'down']), latencyMs: z.number().optional() }).optional()
}).meta({ id: 'Health' })

export const ErrorBodySchema = z.object({
  statusCode: z.number().int(),
  code: z.string(),
  error: z.string(),
  message: z.string(),
  expectedSeq: z.number().int().min(1).optional().meta({ description: 'DELTA_OUT_OF_ORDER: the seq the message takes next' }),
  status: MessageStatusSchema.optional().meta({ description: 'MESSAGE_NOT_IN_PROGRESS: the message\'s status' }),
  statusReason: z.string().optional().meta({ description: 'MESSAGE_NOT_IN_PROGRESS: why it is incomplete' })
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
export type MessagePageBody = z.output<typeof MessagePageSchema>
export type ListQuery = z.output<typeof ListQuerySchema>
export type ConversationView = z.output<typeof ConversationListItemSchema>
export type MessageWithTokens = z.output<typeof MessageWithTokensSchema>
export type MessageWindow = z.output<typeof MessageWindowSchema>
export type RewindResult = z.output<typeof RewindResultSchema>
export type PatchMessageBody = z.output<typeof PatchMessageBodySchema>
export type WorkflowStateBody = z.output<typeof WorkflowStateBodySchema>
export type WorkflowState = z.output<typeof WorkflowStateSchema>
export type ForkedFrom = z.output<typeof ForkedFromSchema>
export type Health = z.output<typeof HealthSchema>

/** Response schemas for the error statuses a route can answer with. */
export function errorResponses<const S extends number> (...statuses: S[]): Record<S, typeof ErrorBodySchema> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBodySchema])) as Record<S, typeof ErrorBodySchema>
}
