import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

/** Puts the configuration, parsed once at start-up, on the instance. */
export default fp<{ config: Config }>(async (fastify, { config }) => {
  fastify.decorate('config', config)
}, { name: 'config' })
