import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { runCommand, spawnProcess, systemPath, toolEnv } from './helpers/process.js'

// The client as callers get it: `npm pack` of the workspace, installed by name into an empty
// project outside this repository, from a local stand-in for the private feed, then used
// from plain TypeScript against a live server: typechecked with strict settings, compiled,
// run. Nothing here imports the client's sources; only the tarball reaches the project.
//
// Why a registry on 127.0.0.1 and not `npm install --offline <tarball>`: npm asks for a
// dependency's full packument when it adds one, and `npm ci` caches only the abbreviated
// ones, so that install fails offline (ENOTCACHED for zod). The stand-in serves the client
// and the tarballs of its dependencies (zod, eventsource-parser) that the lockfile pins
// (packed from npm's cache), and it lets npm resolve them from the client's own
// `dependencies`, so a dependency missing there fails the run.

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
const feedToken = 'feed-token-for-the-test'
const apiKey = 'package-test-key'

// Packing compiles the client (about 10 s on two cores), installing and two tsc runs add
// about as much again.
t.setTimeout(180_000)

interface Packed {
  name: string
  version: string
  /** The package.json inside the tarball. */
  manifest: Record<string, unknown>
  tarball: Buffer
}

interface Registry {
  url: string
  /** Every request, with the token it carried (undefined when none). */
  requests: Array<{ method: string, path: string, token: string | undefined }>
  server: Server
}

/** A read-only npm registry serving `packages`; with `token`, only to requests bearing it. */
async function startRegistry (packages: Packed[], token?: string): Promise<Registry> {
  const requests: Registry['requests'] = []
  let url = ''
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://registry').pathname).replace(/^\/+/, '')
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    requests.push({ method: request.method ?? '', path, token: bearer })
    const send = (status: number, body: Buffer | string, type: string): void => {
      response.writeHead(status, { 'content-type': type })
      response.end(body)
    }
    if (token !== undefined && bearer !== token) return send(401, '{"error":"authentication required"}', 'application/json')
    if (request.method !== 'GET') return send(405, '{"error":"read-only"}', 'application/json')
    for (const pkg of packages) {
      const file = `${pkg.name}/-/${posix.basename(pkg.name)}-${pkg.version}.tgz`
      if (path === file) return send(200, pkg.tarball, 'application/octet-stream')
      if (path !== pkg.name) continue
      const dist = {
        tarball: `${url}${file}`,
        integrity: `sha512-${createHash('sha512').update(pkg.tarball).digest('base64')}`,
        shasum: createHash('sha1').update(pkg.tarball).digest('hex')
      }
      return send(200, JSON.stringify({
        _id: pkg.name,
        name: pkg.name,
        'dist-tags': { latest: pkg.version },
        versions: { [pkg.version]: { ...pkg.manifest, _id: `${pkg.name}@${pkg.version}`, dist } },
        time: { [pkg.version]: new Date().toISOString() }
      }), 'application/json')
    }
    send(404, '{"error":"not found"}', 'application/json')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  return { url, requests, server }
}

/** The one .tgz that `npm pack --pack-destination dir` wrote, read with its package.json. */
async function readPacked (dir: string): Promise<{ path: string, packed: Packed }> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.tgz'))
  if (names.length !== 1) throw new Error(`expected one tarball in ${dir}, found ${names.join(', ')}`)
  const path = join(dir, names[0] as string)
  const manifest = JSON.parse((await runCommand('tar', ['-xzOf', path, 'package/package.json'])).stdout) as Record<string, unknown>
  return { path, packed: { name: String(manifest.name), version: String(manifest.version), manifest, tarball: await readFile(path) } }
}

const rootPackage = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, devDependencies: Record<string, string> }
const rootLock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string, integrity?: string }> }
/** The client's dependencies: what the public registry stand-in serves. */
const dependencyNames = ['eventsource-parser', 'zod'] as const
const locked = Object.fromEntries(dependencyNames.map((name) => [name, rootLock.packages[`node_modules/${name}`]]))

let workRoot: string | undefined
let app: FastifyInstance | undefined
const registries: Registry[] = []

t.teardown(async () => {
  await app?.close()
  for (const registry of registries) await new Promise((resolve) => registry.server.close(resolve))
  if (workRoot !== undefined) await rm(workRoot, { recursive: true, force: true })
  // What prepack built in the tree: the build output of this test, not a source.
  await rm(join(repoRoot, 'packages/client/dist'), { recursive: true, force: true })
})

interface Setup {
  tarballPath: string
  client: Packed
  /** The project that installed the client. */
  project: string
  /** A minimal environment: system PATH and a HOME of its own; no npm or tap settings. */
  env: NodeJS.ProcessEnv
  feed: Registry
  publicRegistry: Registry
  baseUrl: string
}
let setup: Setup | undefined
const requireSetup = (): Setup => {
  if (setup === undefined) throw new Error('the package was not packed and installed')
  return setup
}

t.before(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'conversation-store-client-package-'))
  const dirs = Object.fromEntries(await Promise.all(['pack', ...dependencyNames, 'home', 'project'].map(async (name) => {
    const dir = join(workRoot as string, name)
    await mkdir(dir)
    return [name, dir] as const
  })))

  // prepack builds the workspace (packages/client/dist), so this is what `npm publish` sends.
  await runCommand('npm', ['pack', '-w', 'packages/client', '--pack-destination', dirs.pack as string], { cwd: repoRoot, env: toolEnv() })
  const { path: tarballPath, packed: client } = await readPacked(dirs.pack as string)

  // The dependencies exactly as the lockfile pins them, from npm's cache (npm ci put them there).
  const dependencies = await Promise.all(dependencyNames.map(async (name) => {
    const pinned = locked[name]
    if (pinned?.version === undefined) throw new Error(`the lockfile pins no ${name}`)
    const dir = dirs[name] as string
    await runCommand('npm', ['pack', `${name}@${pinned.version}`, '--offline', '--pack-destination', dir], { cwd: dir, env: toolEnv() })
    const { packed } = await readPacked(dir)
    if (`sha512-${createHash('sha512').update(packed.tarball).digest('base64')}` !== pinned.integrity) throw new Error(`the cached ${name} is not the one the lockfile pins`)
    return packed
  }))

  // The private feed holds the client and asks for a token; its dependencies come from the public registry.
  const feed = await startRegistry([client], feedToken)
  const publicRegistry = await startRegistry(dependencies)
  registries.push(feed, publicRegistry)

  // A short heartbeat: closing the server waits for the sockets of its event feeds until the next one.
  app = await buildApp(loadConfig({ API_KEYS: apiKey, EVENTS_HEARTBEAT_SECONDS: '1' }), { logger: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  // What the README asks callers to set up, with the feed on 127.0.0.1. A HOME of its own
  // and a cache of its own: no setting or cached package of this machine takes part.
  const project = dirs.project as string
  const env: NodeJS.ProcessEnv = { PATH: systemPath(), HOME: dirs.home, npm_config_cache: join(workRoot, 'npm-cache') }
  await writeFile(join(project, 'package.json'), `${JSON.stringify({ name: 'client-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`)
  const feedHost = feed.url.replace(/^http:/, '')
  await writeFile(join(project, '.npmrc'), [
    `registry=${publicRegistry.url}`,
    `@conversation-store:registry=${feed.url}`,
    `${feedHost}:_authToken=${feedToken}`,
    ''
  ].join('\n'))
  await runCommand('npm', ['install', '--no-audit', '--no-fund', '@conversation-store/client'], { cwd: project, env })

  setup = { tarballPath, client, project, env, feed, publicRegistry, baseUrl }
})

t.test('the tarball holds the compiled client, the schema modules and package.json, nothing else', async (t) => {
  const { tarballPath, client } = requireSetup()
  const files = (await runCommand('tar', ['-tzf', tarballPath])).stdout.split('\n').filter((line) => line !== '').sort()
  t.same(files, [
    'package/dist/packages/client/src/client-answers.d.ts',
    'package/dist/packages/client/src/client-answers.js',
    'package/dist/packages/client/src/client-transport.d.ts',
    'package/dist/packages/client/src/client-transport.js',
    'package/dist/packages/client/src/client-types.d.ts',
    'package/dist/packages/client/src/client-types.js',
    'package/dist/packages/client/src/client.d.ts',
    'package/dist/packages/client/src/client.js',
    'package/dist/packages/client/src/events.d.ts',
    'package/dist/packages/client/src/events.js',
    'package/dist/packages/client/src/stream-message.d.ts',
    'package/dist/packages/client/src/stream-message.js',
    'package/dist/src/event-schemas.d.ts',
    'package/dist/src/event-schemas.js',
    'package/dist/src/schemas.d.ts',
    'package/dist/src/schemas.js',
    'package/dist/src/stream-schemas.d.ts',
    'package/dist/src/stream-schemas.js',
    'package/package.json'
  ], 'the client, the service modules it shares (src/schemas, src/stream-schemas, src/event-schemas), package.json; no tests, no other service code, no maps')

  const manifest = client.manifest
  t.equal(manifest.name, '@conversation-store/client', 'the scoped name')
  t.match(manifest.version, /^\d+\.\d+\.\d+$/, 'a version')
  t.equal(manifest.private, undefined, 'not private')
  t.equal(manifest.type, 'module', 'ESM')
  t.equal(manifest.license, 'MIT', 'a license')
  t.same(manifest.dependencies, { 'eventsource-parser': rootPackage.devDependencies['eventsource-parser'], zod: rootPackage.dependencies.zod },
    'zod, in the range the service uses, and eventsource-parser, in the range its tests use')
  const exported = (manifest.exports as Record<string, { types?: string, default?: string }>)['.']
  for (const target of [exported?.types, exported?.default]) {
    t.ok(target !== undefined && files.includes(posix.join('package', target)), `exports "." names ${target}, which is packed`)
  }

  // Every import in the emitted code is a dependency, a Node.js builtin, or a file in the tarball.
  const unpacked = join(workRoot as string, 'unpacked')
  await mkdir(unpacked)
  await runCommand('tar', ['-xzf', tarballPath, '-C', unpacked])
  for (const file of files.filter((name) => /\.(d\.ts|js)$/.test(name))) {
    const text = await readFile(join(unpacked, file), 'utf8')
    const specifiers = new Set([...text.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((match) => match[1] ?? ''))
    for (const specifier of specifiers) {
      const resolved = specifier.startsWith('.')
        ? posix.join(posix.dirname(file), specifier.replace(/\.js$/, file.endsWith('.d.ts') ? '.d.ts' : '.js'))
        : undefined
      const ok = /^(zod|eventsource-parser)(\/|$)/.test(specifier) || specifier.startsWith('node:') || (resolved !== undefined && files.includes(resolved))
      t.ok(ok, `${file} imports ${specifier}`, { resolved })
    }
  }
})

t.test('a project outside the repository installs it from the feed and runs it from strict TypeScript', async (t) => {
  const { project, env, feed, publicRegistry, baseUrl, client } = requireSetup()

  // Only the client and its dependencies are installed, all real folders inside the project.
  t.same((await readdir(join(project, 'node_modules'))).filter((name) => !name.startsWith('.')).sort(), ['@conversation-store', ...dependencyNames],
    'node_modules holds the client, eventsource-parser and zod, nothing of the service')
  const installed = await realpath(join(project, 'node_modules', '@conversation-store', 'client'))
  t.ok(installed.startsWith(await realpath(project)), 'the client is installed in the project, not linked to this repository')
  const lock = JSON.parse(await readFile(join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string, integrity?: string }> }
  t.equal(lock.packages['node_modules/@conversation-store/client']?.version, client.version, 'the packed version')
  for (const name of dependencyNames) t.equal(lock.packages[`node_modules/${name}`]?.integrity, locked[name]?.integrity, `the ${name} the service locks`)

  // npm sent the feed's token to the feed, and only there.
  t.ok(feed.requests.some((request) => request.path === '@conversation-store/client' && request.token === feedToken), 'the feed was asked with its token')
  t.ok(feed.requests.every((request) => request.token === feedToken), 'every request to the feed carried the token')
  for (const name of dependencyNames) t.ok(publicRegistry.requests.some((request) => request.path === name), `${name} came from the public registry`)
  t.notOk(publicRegistry.requests.some((request) => request.token !== undefined), 'the feed token did not leak to the public registry')

  // Strict, nodenext, and no @types/node: fetch and console come from the DOM lib, which
  // the client's declarations must be happy with.
  await writeFile(join(project, 'tsconfig.json'), `${JSON.stringify({
    compilerOptions: {
      strict: true,
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      lib: ['es2022', 'dom'],
      types: [],
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      outDir: 'out',
      rootDir: '.'
    },
    files: ['main.ts']
  }, null, 2)}\n`)
  await writeFile(join(project, 'main.ts'), `import {
  ConversationStoreError, createConversationStoreClient, type Conversation, type ConversationSummary
} from '@conversation-store/client'

declare const process: { env: Record<string, string | undefined> }

const baseUrl = process.env.CONVERSATION_STORE_URL
if (baseUrl === undefined) throw new Error('CONVERSATION_STORE_URL is not set')
const apiKey = process.env.CONVERSATION_STORE_KEY
const store = createConversationStoreClient({ baseUrl, ...(apiKey === undefined ? {} : { apiKey }) })

const created = await store.createConversation({ id: 'from-the-tarball', userId: 'package-user', title: 'Installed' })
const conversation: Conversation = created.conversation
const appended = await store.appendMessages(conversation.id, [
  { id: 'm1', role: 'user', text: 'Hello' },
  { id: 'm2', role: 'assistant', text: 'Hi there' }
], { ifMatch: created })
const read = await store.getConversation(conversation.id)
if (read.notModified) throw new Error('a first read cannot be "not modified"')
const page = await store.listConversations('package-user', { view: 'summary' })
const summaries: ConversationSummary[] = page.items
let missing = 'none'
try {
  await store.getConversation('does-not-exist')
} catch (error) {
  if (!(error instanceof ConversationStoreError)) throw error
  missing = \`\${error.statusCode ?? 'no status'} \${error.code}\`
}
// Follow another conversation from where a read left it, until it is deleted: a real event stream.
await store.createConversation({ id: 'followed', userId: 'package-follower' })
const before = await store.getConversation('followed')
const followed: string[] = []
const following = (async () => {
  for await (const event of store.events('followed', { after: before.lastEventId })) {
    followed.push(event.type === 'message.created' ? \`\${event.type} \${event.data.message.text ?? ''}\` : event.type)
  }
})()
await store.appendMessages('followed', [{ id: 'f1', role: 'user', text: 'Follow me' }])
await store.deleteConversation('followed')
await following
console.log(JSON.stringify({
  created: { id: conversation.id, version: created.version, etag: created.etag, title: conversation.title ?? null },
  appended: { appended: appended.appended, skipped: appended.skipped, messageCount: appended.messageCount, version: appended.version },
  read: { version: read.version, texts: read.conversation.messages.map((message) => message.text ?? '') },
  listed: summaries.map((summary) => ({ id: summary.id, messageCount: summary.messageCount })),
  missing,
  followed
}))
`)
  const typecheck = await runCommand(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, env }).catch((error: unknown) => error as Error)
  t.notOk(typecheck instanceof Error, 'main.ts typechecks and compiles', { error: typecheck instanceof Error ? typecheck.message : undefined })

  const run = await runCommand(process.execPath, ['out/main.js'], {
    cwd: project,
    env: { PATH: systemPath(), CONVERSATION_STORE_URL: baseUrl, CONVERSATION_STORE_KEY: apiKey }
  })
  const output = JSON.parse(run.stdout) as Record<string, unknown>
  t.match(output, {
    created: { id: 'from-the-tarball', version: 1, etag: /^"[^"]+"$/, title: 'Installed' },
    appended: { appended: 2, skipped: 0, messageCount: 2, version: 2 },
    read: { version: 2, texts: ['Hello', 'Hi there'] },
    listed: [{ id: 'from-the-tarball', messageCount: 2 }],
    missing: '404 CONVERSATION_NOT_FOUND',
    followed: ['message.created Follow me', 'conversation.deleted']
  }, 'create, append (conditional), get, list, a typed error and a followed conversation, all through the installed package')
  t.equal(run.stderr, '', 'nothing on stderr')

  // The service saw the writes, so the program talked to it rather than printing a story.
  const stored = await app?.inject({ method: 'GET', url: '/v1/conversations/from-the-tarball', headers: { authorization: `Bearer ${apiKey}` } })
  t.equal(stored?.statusCode, 200, 'the conversation is in the service')
  t.equal((stored?.json() as { messages: unknown[] }).messages.length, 2, 'the service holds both messages')
})

t.test('the declarations are real types: wrong calls do not compile', async (t) => {
  const { project, env } = requireSetup()
  await writeFile(join(project, 'tsconfig.wrong.json'), `${JSON.stringify({ extends: './tsconfig.json', compilerOptions: { noEmit: true }, files: ['wrong.ts'] }, null, 2)}\n`)
  // One mistake a line: an argument of the wrong type, a role the schema does not have, an
  // unknown option, and a result used without narrowing the notModified union.
  await writeFile(join(project, 'wrong.ts'), [
    "import { createConversationStoreClient } from '@conversation-store/client'",
    "const store = createConversationStoreClient({ baseUrl: 'http://127.0.0.1:1' })",
    'await store.createConversation({ userId: 42 })',
    "await store.appendMessages('c1', [{ role: 'robot', text: 'beep' }])",
    "createConversationStoreClient({ baseUrl: 'http://127.0.0.1:1', retries: 3 })",
    "const title: string | undefined = (await store.getConversation('c1')).conversation.title",
    'export { title }',
    ''
  ].join('\n'))
  const proc = spawnProcess(process.execPath, [tsc, '-p', 'tsconfig.wrong.json', '--pretty', 'false'], { cwd: project, env })
  const result = await proc.exited
  t.not(result.code, 0, 'tsc fails', { stdout: proc.stdout, stderr: proc.stderr })
  const errors = proc.stdout.split('\n').filter((line) => /error TS\d+/.test(line))
  const lines = [...new Set(errors.map((line) => Number(/^wrong\.ts\((\d+),/.exec(line)?.[1])))].sort((a, b) => a - b)
  t.same(lines, [3, 4, 5, 6], 'each wrong line, and only those, is an error', { errors })
  t.notOk(errors.some((line) => /TS2307|TS7016/.test(line)), 'the package and its types resolve (no "cannot find module", no implicit any)', { errors })
})

t.test('every TypeScript example in docs/client.md compiles against the packed client', async (t) => {
  const { project, env } = requireSetup()
  const page = await readFile(join(repoRoot, 'docs', 'client.md'), 'utf8')
  const examples = [...page.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map(([, body]) => body as string)
  t.ok(examples.length >= 3, `${examples.length} examples`)
  const files = examples.map((_, index) => `example-${index + 1}.ts`)
  await Promise.all(examples.map(async (body, index) => await writeFile(join(project, files[index] as string), body)))
  await writeFile(join(project, 'tsconfig.examples.json'), `${JSON.stringify({ extends: './tsconfig.json', compilerOptions: { noEmit: true }, files }, null, 2)}\n`)
  const proc = spawnProcess(process.execPath, [tsc, '-p', 'tsconfig.examples.json', '--pretty', 'false'], { cwd: project, env })
  const result = await proc.exited
  t.equal(result.code, 0, 'tsc accepts every example', { errors: proc.stdout.split('\n').filter((line) => line !== '') })
})
