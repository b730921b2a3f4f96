import fp from 'fastify-plugin'

/** Echoes the request id (see src/http/request-id.ts) so callers can quote it. */
export default fp(async (fastify) => {
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
}, { name: 'request-id' })
