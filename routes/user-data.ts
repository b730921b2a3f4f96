import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { errorCodes } from 'fastify'
import { Readable } from 'node:stream'
import { z } from 'zod'
import { ImportTooLargeError } from '../src/errors.js'
import { exportLines } from '../src/history/export.js'
import { importLines } from '../src/history/import.js'
import { ndjsonLines } from '../src/history/ndjson.js'
import { ImportQuerySchema, ImportResultSchema } from '../src/history-schemas.js'
import { errorResponses, UserParamsSchema } from '../src/schemas.js'

const tags = ['users']
const NDJSON = 'application/x-ndjson'

/** A user's data as a stream of lines, out and in: access and portability (erasure is delete-all). */
const userDataRoutes: FastifyPluginAsyncZod = async (fastify) => {
  const store = fastify.conversationStore
  const { importMaxBytes, maxTtlSeconds } = fastify.config
  // The import body reaches its handler as the stream it is, to be read line by line.
  fastify.addContentTypeParser(NDJSON, (_request, payload, done) => { done(null, payload) })

  fastify.get('/users/:userId/export', {
    config: { role: 'admin', audit: 'user.export' },
    schema: {
      tags,
      summary: "Export a user's conversations (admin role)",
      description: `Streams ${NDJSON}: one ExportLine per conversation (one version of it, with all its messages and its workflow ` +
        'state), then one ExportEnd line with their number. An export without that last line was cut.',
      params: UserParamsSchema,
      response: { 200: z.string().meta({ description: 'ExportLine lines, then an ExportEnd line' }), ...errorResponses(400, 401, 500, 503) }
    }
  }, async (request, reply) => {
    const { userId } = request.params
    request.auditFacts = { userId }
    const lines = await exportLines(store, userId, request.caller.reach)
    // A stream is sent as it is read, with backpressure: the response schema only documents it.
    return await reply.type(NDJSON).send(Readable.from(lines) as never)
  })

  fastify.post('/users/:userId/import', {
    config: { role: 'admin', audit: 'user.import' },
    bodyLimit: importMaxBytes,
    schema: {
      tags,
      summary: "Import a user's conversations, as an export wrote them (admin role)",
      description: `A ${NDJSON} body of ExportLine lines, at most IMPORT_MAX_BYTES. Each line is written whole or not at all, and a bad ` +
        'line is reported without stopping the others.',
      params: UserParamsSchema,
      querystring: ImportQuerySchema,
      response: { 200: ImportResultSchema, ...errorResponses(400, 401, 413, 415, 500, 503) }
    }
  }, async (request) => {
    const { userId } = request.params
    request.auditFacts = { userId }
    // Only this route reads the body as a stream, so only ndjson is taken.
    const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase()
    if (type !== NDJSON) throw new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(type ?? '')
    if (Number(request.headers['content-length'] ?? 0) > importMaxBytes) throw new ImportTooLargeError(importMaxBytes)
    const lines = ndjsonLines(request.body as AsyncIterable<Buffer>, importMaxBytes)
    return await importLines(lines, { store, userId, caller: request.caller, mode: request.query.mode, maxTtlSeconds })
  })
}

export default userDataRoutes
