import fastJson from 'fast-json-stringify'
import type { FastifySerializerCompiler } from 'fastify/types/schema.js'
import { z } from 'zod'

/**
 * Serialises responses with fast-json-stringify, compiled from the JSON Schema of the
 * route's zod response schema: the same contract, and like zod it drops undeclared fields,
 * but it does not validate every response a second time. The benchmark showed zod's
 * encode-then-JSON.stringify as the largest cost of a GET (bench/README.md).
 */
export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = ({ schema }) => {
  const serialize = compileSerializer(schema)
  return (data) => (data as Partial<Record<typeof VIEW_JSON, string>> | null)?.[VIEW_JSON] ?? serialize(data)
}

/**
 * Where a conversation view carries the JSON it was validated and serialised to, with the
 * list-item schema that GET and lists answer (see src/store/view-cache.ts): it is sent as
 * it is.
 */
export const VIEW_JSON = Symbol('conversation-store.viewJson')

/** A serialiser for one zod schema, as routes use for their responses. */
export function compileSerializer (schema: z.ZodType): (data: unknown) => string {
  const jsonSchema = z.toJSONSchema(schema, { target: 'draft-7', io: 'output', unrepresentable: 'any' })
  return fastJson(jsonSchema as Parameters<typeof fastJson>[0])
}
