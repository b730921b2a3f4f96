import { mkdtempSync } from 'node:fs'
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from './build.js'
import { spawnProcess, toolEnv } from './process.js'

/**
 * Compiles the service (and copies its Lua scripts) into a folder of its own (inside node_modules, so that its imports
 * resolve), removed when the test ends, and answers the arguments that start it as npm
 * start and the image do: the tracing preload, then the server.
 */
export async function compiledService (t: TestContext, name: string): Promise<string[]> {
  const root = process.cwd()
  const out = mkdtempSync(join(root, 'node_modules', `.cache-${name}-`))
  t.teardown(async () => { await rm(out, { recursive: true, force: true }) })
  const build = spawnProcess(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out], { cwd: root, env: toolEnv() })
  if ((await build.exited).code !== 0) throw new Error(`build failed: ${build.stdout}${build.stderr}`)
  // As npm run build does: the Redis scripts are read from beside the compiled store.
  await cp(join(root, 'src/store/redis/lua'), join(out, 'src/store/redis/lua'), { recursive: true })
  return ['--import', join(out, 'src/telemetry/preload.js'), join(out, 'src/server.js')]
}
