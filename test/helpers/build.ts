import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

export interface TestContext {
  teardown: (fn: () => unknown) => void
}

/** Builds the app from environment-style settings, closed when the test ends. */
export async function build (t: TestContext, env: Record<string, string> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig(env), { logger: false, ...options })
  t.teardown(() => app.close())
  await app.ready()
  return app
}
