import fastJson from 'fast-json-stringify'
import { z } from 'zod'

// Serialisation that both the HTTP layer and the store's view cache use: the store keeps
// views as the JSON it validated, and the HTTP layer sends that JSON as it is.

/**
 * Where a conversation view carries the JSON it was validated and serialised to, with the
 * list-item schema that GET and lists answer (see src/store/view-cache.ts): it is sent as
 * it is.
 */
export const VIEW_JSON = Symbol('conversation-store.viewJson')

/**
 * A flat copy of a string kept for long: fast-json-stringify answers a rope of its pieces
 * (three times the text's memory, measured), and a slice of a reply shares the reply's
 * memory. A copy through a Buffer is one flat string of its own.
 */
export function flatCopy (text: string): string {
  return Buffer.from(text).toString()
}

/** A serialiser for one zod schema, as routes use for their responses. */
export function compileSerializer (schema: z.ZodType): (data: unknown) => string {
  const jsonSchema = z.toJSONSchema(schema, { target: 'draft-7', io: 'output', unrepresentable: 'any' })
  return fastJson(jsonSchema as Parameters<typeof fastJson>[0])
}
