import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from './build.js'
import { spawnProcess, toolEnv } from './process.js'

/**
 * Compiles the service into a folder of its own (inside node_modules, so that its imports
 * resolve), removed when the test ends, and answers the arguments that start it as npm
 * start and the image do: the tracing preload, then the server.
 */
export async function compiledService (t: TestContext, name: string): Promise<string[]> {
  const root = process.cwd()
  const out = mkdtempSync(join(root, 'node_modules', `.cache-${name}-`))
  t.teardown(async () => { await rm(out, { recursive: true, force: true }) })
  const build = spawnProcess(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out], { cwd: root, env: toolEnv() })
  if ((await build.exited).code !== 0) throw new Error(`build failed: ${build.stdout}${build.stderr}`)
  return ['--import', join(out, 'src/telemetry/preload.js'), join(out, 'src/server.js')]
}
