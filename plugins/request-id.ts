import fp from 'fastify-plugin'

/** Echoes the request id (see src/http/request-id.ts) so callers can quote it. */
export default fp(async (fastify) => {
  // A callback hook: an async one costs a promise on every request for a synchronous line.
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'request-id' })
