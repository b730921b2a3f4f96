import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import {
  freePort, killProcess, runCommand, serviceEnv, spawnProcess, toolEnv, waitForExit, waitForHttp, type SpawnedProcess
} from './helpers/process.js'

// The production path, as the Dockerfile runs it: compile, install production dependencies
// only into a clean folder next to the compiled `dist`, start `node dist/src/server.js` with
// NODE_ENV=production, use it over real HTTP, and stop it with SIGTERM.

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')

// Building and `npm ci` take a while; the rest is quick.
t.setTimeout(180_000)

let appDir: string | undefined
const started: SpawnedProcess[] = []

// Runs even when a test fails: no stray server, no leftover folder.
t.teardown(async () => {
  await Promise.all(started.map(async (proc) => await killProcess(proc)))
  if (appDir !== undefined) await rm(appDir, { recursive: true, force: true })
})

t.before(async () => {
  appDir = await mkdtemp(join(tmpdir(), 'conversation-store-smoke-'))
  // Compile into the temporary folder, so the repository's own dist/ is left alone.
  // rootDir is '.', so this gives dist/src, dist/plugins, dist/routes and dist/package.json.
  await runCommand(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(appDir, 'dist')], { cwd: repoRoot, env: toolEnv() })
  await copyFile(join(repoRoot, 'package.json'), join(appDir, 'package.json'))
  await copyFile(join(repoRoot, 'package-lock.json'), join(appDir, 'package-lock.json'))
  await runCommand('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: appDir, env: toolEnv() })
})

function requireAppDir (): string {
  if (appDir === undefined) throw new Error('the app was not prepared')
  return appDir
}

/** Starts the compiled server from the temporary folder with only the given settings. */
function startServer (env: NodeJS.ProcessEnv): SpawnedProcess {
  const proc = spawnProcess(process.execPath, ['dist/src/server.js'], { cwd: requireAppDir(), env: serviceEnv(env) })
  started.push(proc)
  return proc
}

async function startListening (env: NodeJS.ProcessEnv): Promise<{ proc: SpawnedProcess, base: string }> {
  const port = await freePort()
  const proc = startServer({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env })
  const base = `http://127.0.0.1:${port}`
  await waitForHttp(`${base}/health/live`, { timeoutMs: 15_000, process: proc })
  return { proc, base }
}

async function createConversation (base: string, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${base}/v1/conversations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ userId: 'smoke' })
  })
}

/** Sends SIGTERM and expects a clean exit (code 0) within five seconds. */
async function assertGracefulStop (t: Test, proc: SpawnedProcess): Promise<void> {
  proc.child.kill('SIGTERM')
  const result = await waitForExit(proc, 5_000)
  t.ok(result, 'exits within 5 s of SIGTERM', { stderr: proc.stderr })
  t.equal(result?.code, 0, 'exit code 0', { stderr: proc.stderr })
  t.equal(result?.signal, null, 'not ended by the signal itself')
}

t.test('production with AUTH_DISABLED=true', async (t) => {
  const { proc, base } = await startListening({ AUTH_DISABLED: 'true' })

  const health = await fetch(`${base}/health`)
  t.equal(health.status, 200, 'GET /health')
  t.match(await health.json(), { status: 'ok', backend: 'memory' })

  const created = await createConversation(base)
  t.equal(created.status, 201, 'POST /v1/conversations without a key')
  t.match(await created.json(), { userId: 'smoke' })

  await assertGracefulStop(t, proc)
})

t.test('production with API_KEYS', async (t) => {
  const { proc, base } = await startListening({ API_KEYS: 'secret' })

  const health = await fetch(`${base}/health`)
  t.equal(health.status, 200, 'GET /health needs no key')
  t.match(await health.json(), { status: 'ok', backend: 'memory' })

  const denied = await createConversation(base)
  t.equal(denied.status, 401, 'POST /v1/conversations without a key')
  await denied.body?.cancel()

  const created = await createConversation(base, { authorization: 'Bearer secret' })
  t.equal(created.status, 201, 'POST /v1/conversations with the key')
  t.match(await created.json(), { userId: 'smoke' })

  await assertGracefulStop(t, proc)
})

/** Starts the server with a bad setting and expects exit code 1 with one line on stderr. */
async function assertConfigRejected (t: Test, env: NodeJS.ProcessEnv, variable: string): Promise<void> {
  const proc = startServer({ HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env })
  const result = await waitForExit(proc, 15_000)
  t.ok(result, 'exits by itself')
  t.equal(result?.code, 1, 'exit code 1', { stderr: proc.stderr })
  const lines = proc.stderr.split('\n').filter((line) => line.trim() !== '')
  t.equal(lines.length, 1, 'one line on stderr', { stderr: proc.stderr })
  t.match(lines[0] ?? '', variable, `stderr names ${variable}`)
}

t.test('production without API_KEYS or AUTH_DISABLED is refused', async (t) => {
  const port = await freePort()
  await assertConfigRejected(t, { NODE_ENV: 'production', PORT: String(port) }, 'API_KEYS')
})

t.test('a PORT that is not a number is refused', async (t) => {
  await assertConfigRejected(t, { NODE_ENV: 'production', AUTH_DISABLED: 'true', PORT: 'notanumber' }, 'PORT')
})
