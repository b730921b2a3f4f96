import { z } from 'zod'

// The schemas of streamed messages: a delta and what it answers (stream-rules.ts has the rules).

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
