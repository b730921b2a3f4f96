import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.js'
import type { TestContext } from './build.js'
import { build } from './build.js'
import type { RedisServer } from './redis-server.js'

/** A way to build the app on one backend; the shared API suite runs once per backend. */
export interface Backend {
  name: string
  build: (t: TestContext, env?: Record<string, string>, options?: AppOptions) => Promise<FastifyInstance>
}

export const memoryBackend: Backend = {
  name: 'memory',
  build: (t, env = {}, options = {}) => build(t, env, options)
}

/** The settings that point the app at a test Redis server. */
export function redisEnv (server: RedisServer): Record<string, string> {
  return {
    REDIS_URL: server.url,
    ...(server.tls ? {} : { REDIS_ALLOW_PLAINTEXT: 'true' }),
    ...(server.caFile === undefined ? {} : { REDIS_TLS_CA_FILE: server.caFile }),
    // Each test file gets its own key space on the shared test server.
    REDIS_KEY_PREFIX: `test-${process.pid}:`
  }
}

export function redisBackend (name: string, server: RedisServer): Backend {
  return {
    name,
    build: (t, env = {}, options = {}) => build(t, { ...redisEnv(server), ...env }, options)
  }
}
