import { createHash, timingSafeEqual } from 'node:crypto'
import type { onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { UnauthorizedError } from '../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook that admits only `Authorization: Bearer <one of API_KEYS>`. */
    requireApiKey: onRequestAsyncHookHandler
  }
}

// Hashing first gives equal-length buffers, so the comparison time reveals nothing.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

export default fp(async (fastify) => {
  const keys = fastify.config.apiKeys.map(digest)

  fastify.decorate('requireApiKey', async function requireApiKey (request, reply) {
    if (keys.length === 0) return
    const match = /^Bearer +(\S+)\s*$/i.exec(request.headers.authorization ?? '')
    const presented = digest(match?.[1] ?? '')
    // Compare against every key so the time does not depend on which one matched.
    const accepted = keys.reduce((found, key) => timingSafeEqual(key, presented) || found, false)
    if (!accepted) {
      reply.header('www-authenticate', 'Bearer')
      throw new UnauthorizedError()
    }
  })
}, { name: 'auth', dependencies: ['config'] })
