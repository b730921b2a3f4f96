import { access, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import {
  buildImage, copyContext, dockerignore, parseDockerfile, runHealthcheck, startContainer,
  type BuiltImage, type BuiltStage, type Dockerfile
} from './helpers/dockerfile.js'
import {
  freePort, killProcess, runCommand, systemPath, toolEnv, waitForExit, waitForHttp, type SpawnedProcess
} from './helpers/process.js'
import { startRedis } from './helpers/redis-server.js'

// The Dockerfile, performed without Docker: test/helpers/dockerfile.ts parses it (and throws
// on any instruction it does not know), performs each stage's COPY and RUN in a temporary
// folder standing in for the stage's WORKDIR, then starts the final stage's CMD exactly as
// written with the image's ENV, probes it, runs its HEALTHCHECK and stops it with SIGTERM.
// Nothing here repeats the Dockerfile's steps, so changing the Dockerfile changes the test,
// and the drift cases at the end show that it fails when the image and the project disagree.

const repoRoot = fileURLToPath(new URL('..', import.meta.url))

// Installing the build stage's dependencies (with the dev ones) and compiling take most of
// the time: 40 to 50 s here; the rest takes about 10 s.
t.setTimeout(300_000)

interface Setup {
  workRoot: string
  /** A snapshot of the build context, taken once, as `docker build` sends it. */
  context: string
  dockerfileText: string
  dockerfile: Dockerfile
  image: BuiltImage
  /** The clean environment RUN steps get: PATH, HOME, the npm cache. */
  runEnv: NodeJS.ProcessEnv
  home: string
  cache: Map<string, BuiltStage>
}

let workRoot: string | undefined
let setup: Setup | undefined
const started: SpawnedProcess[] = []

// Runs even when a test fails: no stray server, no leftover folder.
t.teardown(async () => {
  await Promise.all(started.map(async (proc) => await killProcess(proc)))
  if (workRoot !== undefined) await rm(workRoot, { recursive: true, force: true })
})

/**
 * npm's cache for the RUN steps. Pointing npm at the user's cache keeps `npm ci` fast, but
 * the Dockerfile ends its install with `npm cache clean --force`, which deletes
 * `<cache>/_cacache`. So npm gets a folder of its own whose `_cacache` is a symlink to the
 * user's: npm reads and adds entries as it always does, and the clean removes only the link.
 */
async function npmCacheEnv (root: string): Promise<NodeJS.ProcessEnv> {
  const userCache = (await runCommand('npm', ['config', 'get', 'cache'], { env: toolEnv() })).stdout.trim()
  await mkdir(join(userCache, '_cacache'), { recursive: true })
  const cache = join(root, 'npm-cache')
  await mkdir(cache)
  await symlink(join(userCache, '_cacache'), join(cache, '_cacache'))
  return { npm_config_cache: cache }
}

/** Proxy settings, which Docker also passes to builds; nothing else from this shell. */
function proxyEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => /^(https?_proxy|no_proxy)$/i.test(key)))
}

t.before(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'conversation-store-image-'))
  const home = join(workRoot, 'home')
  await mkdir(home)
  const runEnv = { PATH: systemPath(), HOME: home, ...proxyEnv(), ...await npmCacheEnv(workRoot) }
  // Every case below builds from this snapshot, so edits to the working tree while the test
  // runs cannot make the cases disagree (or defeat the build cache).
  const context = join(workRoot, 'context')
  await copyContext(repoRoot, context)
  const dockerfileText = await readFile(join(context, 'Dockerfile'), 'utf8')
  const dockerfile = parseDockerfile(dockerfileText)
  const cache = new Map<string, BuiltStage>()
  const begun = Date.now()
  const image = await buildImage(dockerfile, { contextDir: context, workRoot, runEnv, cache, log: (message) => t.comment(message) })
  t.comment(`image built in ${Math.round((Date.now() - begun) / 1000)} s`)
  setup = { workRoot, context, dockerfileText, dockerfile, image, runEnv, home, cache }
})

function requireSetup (): Setup {
  if (setup === undefined) throw new Error('the image was not built')
  return setup
}

/** `docker run -e ...` of the image: its CMD, its ENV, then `env`. */
function start (image: BuiltStage, env: Record<string, string>): SpawnedProcess {
  const proc = startContainer(image, { home: requireSetup().home, env })
  started.push(proc)
  return proc
}

/** Production settings for a run; NODE_ENV comes from the image itself. */
async function runSettings (env: Record<string, string>): Promise<{ env: Record<string, string>, base: string }> {
  const port = await freePort()
  return { env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env }, base: `http://127.0.0.1:${port}` }
}

async function createConversation (base: string, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${base}/v1/conversations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ userId: 'image' })
  })
}

/** The HEALTHCHECK passes while the server runs. */
async function assertHealthy (t: Test, image: BuiltStage, env: Record<string, string>): Promise<void> {
  const result = await runHealthcheck(image, { home: requireSetup().home, env })
  t.equal(result?.code, 0, 'the HEALTHCHECK command exits 0 within its --timeout')
}

/** SIGTERM ends the process with code 0 within five seconds; the HEALTHCHECK then fails. */
async function assertGracefulStop (t: Test, image: BuiltStage, proc: SpawnedProcess, env: Record<string, string>): Promise<void> {
  proc.child.kill('SIGTERM')
  const result = await waitForExit(proc, 5_000)
  t.ok(result, 'exits within 5 s of SIGTERM', { stderr: proc.stderr })
  t.equal(result?.code, 0, 'exit code 0', { stderr: proc.stderr })
  t.equal(result?.signal, null, 'not ended by the signal itself')
  const check = await runHealthcheck(image, { home: requireSetup().home, env })
  t.not(check?.code, 0, 'the HEALTHCHECK fails once the server is gone (it really probes)')
}

/** Each shell command of the stage's RUN instructions, split at &&, || and ;. */
function runCommands (stage: BuiltStage): string[] {
  return stage.stage.instructions.flatMap((instruction) => instruction.kind === 'RUN' ? instruction.command.split(/&&|\|\||;/) : []).map((command) => command.trim())
}

const exists = async (path: string): Promise<boolean> => await access(path).then(() => true, () => false)

t.test('the Dockerfile describes a production image', async (t) => {
  const { image, dockerfile } = requireSetup()
  const final = image.final
  t.equal(final.user, 'node', 'the final stage runs as USER node')
  t.same(final.exposed.map((port) => port.replace(/\/tcp$/, '')), ['8080'], 'it EXPOSEs 8080 only')
  t.equal(final.env.NODE_ENV, 'production', 'the image itself sets NODE_ENV=production')
  t.equal(final.cmd?.[0], 'node', 'CMD is the exec form and starts node, so node is PID 1 and gets SIGTERM')
  // Every file CMD names (the tracing preload and the server) is in the image.
  const files = (final.cmd ?? []).slice(1).filter((arg) => !arg.startsWith('-'))
  t.same(files.map((file) => file.replace(/^\.\//, '')), ['dist/src/telemetry/preload.js', 'dist/src/server.js'], 'CMD preloads tracing, then starts the server')
  for (const file of files) t.ok(await exists(join(final.dir, file)), `CMD's ${file} is in the image`)
  const start = JSON.parse(await readFile(join(final.dir, 'package.json'), 'utf8')).scripts.start as string
  t.ok(start.endsWith(`node ${(final.cmd ?? []).slice(1).join(' ')}`), 'npm start runs what CMD runs')
  t.equal(final.healthcheck?.argv[0], 'node', 'the HEALTHCHECK uses node (the slim image has no curl)')

  const installs = runCommands(final).filter((command) => /^npm\s+(ci|install|i)\b/.test(command))
  t.ok(installs.length > 0, 'the final stage installs dependencies')
  for (const install of installs) t.match(install, /(^|\s)--omit=dev(\s|$)/, `"${install}" uses --omit=dev`)

  const packageJson = JSON.parse(await readFile(join(final.dir, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string>, engines?: { node?: string } }
  // A dev dependency that a production dependency needs too (ajv, which fastify uses) is
  // rightly in the image; the lockfile marks the ones only development needs.
  const lock = JSON.parse(await readFile(join(final.dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  for (const name of Object.keys(packageJson.devDependencies ?? {})) {
    const devOnly = lock.packages[`node_modules/${name}`]?.dev === true
    if (devOnly) t.notOk(await exists(join(final.dir, 'node_modules', name)), `dev dependency ${name} is not in the image`)
    else t.ok(await exists(join(final.dir, 'node_modules', name)), `${name}, which production needs too, is in the image`)
  }

  // The base images must run a Node.js line the project declares (engines: ^20.x || ^22.x).
  const supported = [...(packageJson.engines?.node ?? '').matchAll(/\^(\d+)\./g)].map((match) => Number(match[1]))
  t.ok(supported.length > 0, 'engines.node names the supported lines')
  for (const stage of dockerfile.stages) {
    const major = Number(/^node:(\d+)/.exec(stage.image)?.[1])
    t.ok(supported.includes(major), `${stage.image} satisfies engines.node ${packageJson.engines?.node}`)
    if (major !== Number(process.versions.node.split('.')[0])) t.comment(`note: ${stage.image} is performed here with Node.js ${process.versions.node}`)
  }
})

t.test('production with AUTH_DISABLED=true', async (t) => {
  const { image } = requireSetup()
  const { env, base } = await runSettings({ AUTH_DISABLED: 'true' })
  const proc = start(image.final, env)
  await waitForHttp(`${base}/health/live`, { timeoutMs: 15_000, process: proc })

  const health = await fetch(`${base}/health`)
  t.equal(health.status, 200, 'GET /health')
  t.match(await health.json(), { status: 'ok', backend: 'memory' })

  const created = await createConversation(base)
  t.equal(created.status, 201, 'POST /v1/conversations without a key')
  t.match(await created.json(), { userId: 'image' })

  await assertHealthy(t, image.final, env)
  await assertGracefulStop(t, image.final, proc, env)
})

t.test('production with API_KEYS', async (t) => {
  const { image } = requireSetup()
  const { env, base } = await runSettings({ API_KEYS: 'secret' })
  const proc = start(image.final, env)
  await waitForHttp(`${base}/health/live`, { timeoutMs: 15_000, process: proc })

  const denied = await createConversation(base)
  t.equal(denied.status, 401, 'POST /v1/conversations without a key')
  await denied.body?.cancel()

  const created = await createConversation(base, { authorization: 'Bearer secret' })
  t.equal(created.status, 201, 'POST /v1/conversations with the key')
  t.match(await created.json(), { userId: 'image' })

  await assertHealthy(t, image.final, env)
  await assertGracefulStop(t, image.final, proc, env)
})

t.test('the image carries every Lua script and runs on Redis', async (t) => {
  const { image, context } = requireSetup()
  const scripts = (await readdir(join(context, 'src/store/redis/lua'), { recursive: true })).filter((file) => file.endsWith('.lua'))
  t.ok(scripts.length >= 20, `${scripts.length} Lua files in the sources`)
  for (const file of scripts) t.ok(await exists(join(image.final.dir, 'dist/src/store/redis/lua', file)), `the image has ${file}`)

  const redis = await startRedis()
  t.teardown(() => redis.close())
  const { env, base } = await runSettings({ AUTH_DISABLED: 'true', REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true' })
  const proc = start(image.final, env)
  await waitForHttp(`${base}/health/live`, { timeoutMs: 15_000, process: proc })
  t.match(await (await fetch(`${base}/health`)).json(), { status: 'ok', backend: 'redis' })

  const created = await createConversation(base)
  t.equal(created.status, 201, 'a create runs its script')
  const { id } = await created.json() as { id: string }
  const appended = await fetch(`${base}/v1/conversations/${id}/messages`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', text: 'hi' }] })
  })
  t.equal(appended.status, 201, 'an append runs its script')
  await appended.body?.cancel()
  const read = await fetch(`${base}/v1/conversations/${id}/messages`)
  t.match(await read.json(), { items: [{ text: 'hi' }], messageCount: 1 }, 'a page read runs its script')
  await assertGracefulStop(t, image.final, proc, env)
})

/** Starts the image with a bad setting and expects exit code 1 with one line on stderr. */
async function assertConfigRejected (t: Test, env: Record<string, string>, variable: string): Promise<void> {
  const proc = start(requireSetup().image.final, { HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env })
  const result = await waitForExit(proc, 15_000)
  t.ok(result, 'exits by itself')
  t.equal(result?.code, 1, 'exit code 1', { stderr: proc.stderr })
  const lines = proc.stderr.split('\n').filter((line) => line.trim() !== '')
  t.equal(lines.length, 1, 'one line on stderr', { stderr: proc.stderr })
  t.match(lines[0] ?? '', variable, `stderr names ${variable}`)
}

t.test('the image without API_KEYS or AUTH_DISABLED is refused', async (t) => {
  await assertConfigRejected(t, { PORT: String(await freePort()) }, 'API_KEYS')
})

t.test('a PORT that is not a number is refused', async (t) => {
  await assertConfigRejected(t, { AUTH_DISABLED: 'true', PORT: 'notanumber' }, 'PORT')
})

t.test('the parser refuses what the executor would not perform faithfully', async (t) => {
  const { dockerfile } = requireSetup()
  t.same(dockerfile.stages.map((stage) => stage.name), ['build', 'runtime'], 'the stages, by name')

  const parsed = parseDockerfile([
    '# comment',
    'FROM node:20 AS one',
    'WORKDIR /app',
    'RUN echo a \\',
    '  # a comment inside a continuation',
    '',
    '  && echo b',
    'ENV A=1 B="two words"',
    'HEALTHCHECK --timeout=5s \\',
    '  CMD ["node", "-v"]',
    'CMD ["node", "x.js"]'
  ].join('\n'))
  t.match(parsed.stages[0]?.instructions, [
    { kind: 'WORKDIR', path: '/app' },
    { kind: 'RUN', command: 'echo a   && echo b', line: 4 },
    { kind: 'ENV', vars: [['A', '1'], ['B', 'two words']] },
    { kind: 'HEALTHCHECK', options: { timeout: '5s' }, argv: ['node', '-v'] },
    { kind: 'CMD', argv: ['node', 'x.js'] }
  ], 'comments, continuations, ENV quoting, HEALTHCHECK options')

  const refused: Array<[string, RegExp]> = [
    ['FROM node:20\nSTOPSIGNAL SIGINT', /line 2: STOPSIGNAL: this instruction is not supported/],
    ['FROM node:20\nARG X', /ARG: this instruction is not supported/],
    ['FROM node:20\nADD a b', /ADD: this instruction is not supported/],
    ['FROM node:20\nENTRYPOINT ["node"]', /ENTRYPOINT: this instruction is not supported/],
    ['FROM node:20\nCMD node dist/src/server.js', /CMD: only the exec form/],
    ['FROM node:20\nCMD [node, dist/src/server.js]', /CMD: only the exec form/],
    ['FROM node:20\nHEALTHCHECK CMD node -e 1', /HEALTHCHECK: only the exec form/],
    ['FROM node:20\nHEALTHCHECK NONE', /HEALTHCHECK: expected/],
    ['FROM node:20\nCOPY --chown=node:node . .', /the option --chown=node:node is not supported/],
    ['FROM node:20\nCOPY $SRC .', /variable substitution/],
    ['FROM node:20\nENV NODE_ENV production', /only the "ENV key=value/],
    ['FROM --platform=linux/amd64 node:20', /FROM: options are not supported/],
    ['WORKDIR /app', /no FROM|before the first FROM/],
    ['# escape=`\nFROM node:20', /escape directive/]
  ]
  for (const [text, message] of refused) t.throws(() => parseDockerfile(text), message, JSON.stringify(text))

  const ignored = dockerignore(await readFile(join(repoRoot, '.dockerignore'), 'utf8'))
  for (const path of ['node_modules', 'node_modules/fastify/package.json', 'dist/src/server.js', '.git/HEAD', 'test/image.test.ts', 'a/b/debug.log', '.env', 'src/.env.local']) {
    t.ok(ignored(path), `.dockerignore leaves out ${path}`)
  }
  for (const path of ['package.json', 'src/server.ts', 'plugins/auth.ts', 'src/test/x.ts', 'tsconfig.json']) {
    t.notOk(ignored(path), `.dockerignore keeps ${path}`)
  }
  t.ok(dockerignore('dist\n!dist/keep.js')('dist/other.js') && !dockerignore('dist\n!dist/keep.js')('dist/keep.js'), 'the last matching pattern wins')

  // Copying what .dockerignore leaves out fails, as it does in `docker build`.
  const { context, workRoot, runEnv } = requireSetup()
  await t.rejects(buildImage(parseDockerfile('FROM node:20 AS x\nWORKDIR /app\nCOPY test ./test'), { contextDir: context, workRoot, runEnv }),
    /COPY test: excluded by \.dockerignore/)
})

/** Waits for a run of the image that must not come up; returns its output. */
async function assertStartFails (t: Test, proc: SpawnedProcess, base: string): Promise<string> {
  await t.rejects(waitForHttp(`${base}/health/live`, { timeoutMs: 15_000, process: proc }), 'the server never answers')
  const result = await waitForExit(proc, 5_000)
  t.ok(result, 'the process ends by itself')
  t.not(result?.code, 0, 'with a non-zero exit code', { stderr: proc.stderr })
  return proc.stderr
}

t.test('drift: a CMD that names a file the build does not produce fails', async (t) => {
  const { dockerfileText, workRoot, context, runEnv, cache } = requireSetup()
  const drifted = dockerfileText.replace(/^CMD \[.*\]$/m, 'CMD ["node", "dist/src/missing.js"]')
  t.not(drifted, dockerfileText, 'the CMD line was changed')
  const path = join(workRoot, 'Dockerfile.missing-cmd')
  await writeFile(path, drifted)

  // Only CMD differs, and CMD does not change any folder: both stages come from the cache.
  const image = await buildImage(parseDockerfile(await readFile(path, 'utf8')), { contextDir: context, workRoot, runEnv, cache })
  t.same(image.stages.map((stage) => stage.origin), ['cached', 'cached'], 'the stages are the ones built above')
  t.same(image.final.cmd, ['node', 'dist/src/missing.js'])

  const { env, base } = await runSettings({ AUTH_DISABLED: 'true' })
  const stderr = await assertStartFails(t, start(image.final, env), base)
  t.match(stderr, /missing\.js/, 'node names the missing file')
})

t.test('drift: a runtime dependency moved to devDependencies fails', async (t) => {
  const { workRoot, context: original, runEnv, cache, image: built } = requireSetup()
  // fastify-plugin would not do: @fastify/redis and the swagger plugins depend on it, so
  // `npm ci --omit=dev` still installs it. close-with-grace is needed by src/server.ts only.
  const moved = 'close-with-grace'
  const context = join(workRoot, 'context-dev-dependency')
  await copyContext(original, context)

  const packagePath = join(context, 'package.json')
  const packageJson = JSON.parse(await readFile(packagePath, 'utf8')) as { dependencies: Record<string, string>, devDependencies: Record<string, string> }
  const range = packageJson.dependencies[moved]
  t.ok(range, `${moved} is a runtime dependency to begin with`)
  delete packageJson.dependencies[moved]
  packageJson.devDependencies[moved] = range as string
  await writeFile(packagePath, `${JSON.stringify(packageJson, null, 2)}\n`)
  // What `npm install --save-dev` leaves behind: the lockfile follows package.json.
  const lockPath = join(context, 'package-lock.json')
  const lockBefore = JSON.parse(await readFile(lockPath, 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  await runCommand('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: context, env: runEnv })
  const lockAfter = JSON.parse(await readFile(lockPath, 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  t.same(Object.keys(lockAfter.packages).sort(), Object.keys(lockBefore.packages).sort(), 'the lockfile lists the same packages')
  t.equal(lockAfter.packages[`node_modules/${moved}`]?.dev, true, `the lockfile marks ${moved} as dev`)

  // The build stage installs every package (dev or not) from a lockfile with the same
  // packages and compiles the same sources, so its result would be the same (bar the
  // package.json copy in dist, which only supplies name and version); it is taken from the
  // build above to save about 35 s. The runtime stage's inputs changed, so it is performed.
  const image = await buildImage(parseDockerfile(await readFile(join(context, 'Dockerfile'), 'utf8')), {
    contextDir: context, workRoot, runEnv, cache, reuse: { build: built.stage('build') }
  })
  t.same(image.stages.map((stage) => stage.origin), ['reused', 'built'], 'the runtime stage is performed again')
  t.notOk(await exists(join(image.final.dir, 'node_modules', moved)), `${moved} is left out of the image`)

  const { env, base } = await runSettings({ AUTH_DISABLED: 'true' })
  const stderr = await assertStartFails(t, start(image.final, env), base)
  t.match(stderr, moved, `node names ${moved}`)
})
