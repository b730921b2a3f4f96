import { z } from 'zod'
import {
  ConversationIdSchema, ConversationSchema, CreateConversationBodySchema, ForkedFromSchema, MessageIdSchema, UserIdSchema, WorkflowStateBodySchema,
  WorkflowStateSchema
} from './schemas.js'

// The schemas of a conversation's history and of a user's data: fork, export and import.

export const ForkBodySchema = z.strictObject({
  id: ConversationIdSchema.optional().meta({ description: 'The new conversation\'s id; a UUID when absent' }),
  messageId: MessageIdSchema.optional().meta({ description: 'The last message to copy; all of them when absent' }),
  userId: UserIdSchema.optional().meta({ description: 'Another owner for the fork (admin role); the source\'s by default' }),
  title: z.string().max(200).optional().meta({ description: 'The fork\'s title; the source\'s by default' })
}).meta({ id: 'ForkConversation' })

/** One line of an export: one version of one conversation, with everything it owns. */
export const ExportLineSchema = z.strictObject({
  type: z.literal('conversation'),
  conversation: ConversationSchema,
  workflowState: WorkflowStateSchema.nullable()
}).meta({ id: 'ExportLine' })

/** The last line of a complete export. */
export const ExportEndSchema = z.strictObject({
  type: z.literal('end'),
  conversations: z.number().int().min(0)
}).meta({ id: 'ExportEnd' })

// What an import reads: an export's lines. The fields a store makes on every write
// (expiresAt, version, messageCount) may be there, and are made again; createdAt and a
// conversation's updatedAt are kept.
const Timestamp = z.iso.datetime({ offset: true })
const madeAgain = {
  updatedAt: Timestamp.optional(),
  expiresAt: z.string().optional(),
  version: z.number().int().min(1).optional()
}

const ImportedConversationSchema = CreateConversationBodySchema.extend({
  id: ConversationIdSchema,
  forkedFrom: ForkedFromSchema.optional(),
  createdAt: Timestamp.optional(),
  messageCount: z.number().int().min(0).optional(),
  ...madeAgain
})

const ImportedWorkflowStateSchema = WorkflowStateBodySchema.extend({ conversationId: ConversationIdSchema.optional(), ...madeAgain })

export const ImportLineSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('conversation'), conversation: ImportedConversationSchema, workflowState: ImportedWorkflowStateSchema.nullable().optional() }),
  ExportEndSchema
])

export const ImportQuerySchema = z.strictObject({
  mode: z.enum(['skip', 'replace']).default('skip')
    .meta({ description: '`skip` (default): a conversation whose id exists is kept as it is; `replace`: it is replaced' })
})

/** How many failed lines an import answers in detail; failedCount counts them all. */
export const MAX_REPORTED_FAILURES = 1000

export const ImportResultSchema = z.strictObject({
  imported: z.number().int().min(0),
  skipped: z.number().int().min(0),
  failed: z.array(z.strictObject({ line: z.number().int().min(1), code: z.string(), message: z.string() }))
    .meta({ description: `The first ${MAX_REPORTED_FAILURES} lines that were not imported` }),
  failedCount: z.number().int().min(0)
}).meta({ id: 'ImportResult' })

export type ForkBody = z.output<typeof ForkBodySchema>
export type ImportLine = z.output<typeof ImportLineSchema>
export type ImportResult = z.output<typeof ImportResultSchema>
