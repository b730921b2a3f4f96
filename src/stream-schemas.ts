import { z } from 'zod'

// The schemas of streamed messages: a message's status, a delta and what it answers
// (stream-rules.ts has the rules). Imports nothing but zod: schemas.ts builds on it.

/** A streamed message is `in_progress` until it is finished (`completed`) or stopped (`incomplete`). */
export const MessageStatusSchema = z.enum(['completed', 'in_progress', 'incomplete'])
/** Why a message is incomplete: `cancelled`, `timeout`, or a short reason of the producer's. */
export const StatusReasonSchema = z.string().min(1).max(64)
  .meta({ description: 'With status `incomplete` only: `cancelled`, `timeout`, or a short reason the producer gives' })

export const statusFields = {
  status: MessageStatusSchema.optional()
    .meta({ description: '`completed` by default; `in_progress` starts a streamed message (appends only), whose text then grows by deltas' }),
  statusReason: StatusReasonSchema.optional()
}

/** A status reason goes with `incomplete` only, and `incomplete` needs one. */
export function reasonMatchesStatus ({ status, statusReason }: { status?: string | undefined, statusReason?: string | undefined }): boolean {
  return (status === 'incomplete') === (statusReason !== undefined)
}
export const REASON_RULE = { message: 'statusReason goes with status incomplete, and incomplete needs one', path: ['statusReason'] }

export const DeltaBodySchema = z.strictObject({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)
    .meta({ description: 'Starts at 1 and grows by 1; a seq already applied with the same text is a safe retry' }),
  text: z.string().meta({ description: 'The text to add: at most MAX_DELTA_CHARS characters (413 past it)' })
}).meta({ id: 'MessageDelta' })

export const DeltaResultSchema = z.strictObject({
  messageId: z.string(),
  seq: z.number().int().min(1),
  textLength: z.number().int().min(0).meta({ description: 'The characters of text acknowledged so far' })
}).meta({ id: 'MessageDeltaResult' })

export type DeltaBody = z.output<typeof DeltaBodySchema>
