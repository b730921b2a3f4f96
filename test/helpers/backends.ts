import type { FastifyInstance } from 'fastify'
import type { TestContext } from './build.js'
import { build } from './build.js'

/** A way to build the app on one backend; the shared API suite runs once per backend. */
export interface Backend {
  name: string
  build: (t: TestContext, env?: Record<string, string>) => Promise<FastifyInstance>
}

export const memoryBackend: Backend = {
  name: 'memory',
  build: (t, env = {}) => build(t, env)
}
