import type { FastifySerializerCompiler } from 'fastify/types/schema.js'
import type { z } from 'zod'
import { compileSerializer, VIEW_JSON } from '../serialization.js'

/**
 * Serialises responses with fast-json-stringify, compiled from the JSON Schema of the
 * route's zod response schema: the same contract, and like zod it drops undeclared fields,
 * but it does not validate every response a second time. The benchmark showed zod's
 * encode-then-JSON.stringify as the largest cost of a GET (bench/README.md). A view that
 * carries its validated JSON (VIEW_JSON) is sent as it is.
 */
export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = ({ schema }) => {
  const serialize = compileSerializer(schema)
  return (data) => (data as Partial<Record<typeof VIEW_JSON, string>> | null)?.[VIEW_JSON] ?? serialize(data)
}
