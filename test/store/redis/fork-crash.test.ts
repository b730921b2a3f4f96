import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { build } from '../../helpers/build.js'
import { compiledService } from '../../helpers/compiled-service.js'
import { freePort, killProcess, serviceEnv, spawnProcess, waitForHttp } from '../../helpers/process.js'
import { startRedisCluster } from '../../helpers/redis-cluster.js'
import { startRedis } from '../../helpers/redis-server.js'

// A fork killed midway is never visible. The service is a real process, killed with
// SIGKILL at each step of a fork of 10,000 messages: as it reads the source, as it writes
// the index entry, as it writes the fork, and at times after the request. Afterwards the
// fork is either absent or whole, and its owner's list never shows a part of it.

type Json = Record<string, any>

const MESSAGES = 10_000
const root = process.cwd()
const serviceArgs = await compiledService(t, 'fork-crash')

interface Target { name: string, env: Record<string, string>, url: string }

async function seedSource (t: Test, target: Target, id: string, userId: string): Promise<void> {
  const app = await build(t, target.env)
  const messages = Array.from({ length: MESSAGES }, (_, i) => ({ id: `m${i}`, role: 'user', text: `message ${i} ${'x'.repeat(40)}` }))
  await app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId, messages: messages.slice(0, 500) } })
  for (let from = 500; from < MESSAGES; from += 100) {
    await app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: messages.slice(from, from + 100) } })
  }
}

/** Starts the service, asks it for a fork, and kills it when `killWhen` resolves. */
async function forkAndKill (target: Target, source: string, forkId: string, killWhen: () => Promise<unknown>): Promise<void> {
  const port = await freePort()
  const proc = spawnProcess(process.execPath, serviceArgs, { cwd: root, env: serviceEnv({ HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'silent', ...target.env }) })
  await waitForHttp(`http://127.0.0.1:${port}/health/live`, { timeoutMs: 20_000, process: proc })
  const trigger = killWhen()
  const request = fetch(`http://127.0.0.1:${port}/v1/conversations/${source}/fork`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: forkId })
  }).then(async (response) => await response.text(), () => undefined)
  await Promise.race([trigger, request])
  await killProcess(proc)
  await request
}

async function assertWholeOrAbsent (t: Test, target: Target, forkId: string, userId: string, what: string): Promise<string> {
  const app = await build(t, target.env)
  const read = await app.inject({ method: 'GET', url: `/v1/conversations/${forkId}?view=summary` })
  const listed = (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?view=summary&limit=200` })).json().items as Json[]
  if (read.statusCode === 404) {
    t.notOk(listed.some((item) => item.id === forkId), `${what}: absent, and not listed`)
    return 'absent'
  }
  const page = await app.inject({ method: 'GET', url: `/v1/conversations/${forkId}/messages?order=desc&limit=1` })
  t.equal(read.json().messageCount, MESSAGES, `${what}: whole`)
  t.equal(page.json().items[0]?.id, `m${MESSAGES - 1}`, `${what}: through the last message`)
  t.ok(listed.some((item) => item.id === forkId && item.messageCount === MESSAGES), `${what}: listed whole`)
  return 'whole'
}

async function run (t: Test, target: Target, killers: Array<[string, (monitor: Redis | undefined, forkId: string) => Promise<unknown>]>, monitored: boolean): Promise<void> {
  const userId = `crash-owner-${target.name}`
  const source = `crash-source-${target.name}`
  await seedSource(t, target, source, userId)
  const outcomes: string[] = []
  for (const [step, killer] of killers) {
    const forkId = `crash-fork-${target.name}-${outcomes.length}`
    const client = monitored ? new Redis(target.url) : undefined
    const monitor = await client?.monitor()
    try {
      await forkAndKill(target, source, forkId, async () => await killer(monitor, forkId))
    } finally {
      monitor?.disconnect()
      client?.disconnect()
    }
    outcomes.push(`${step}: ${await assertWholeOrAbsent(t, target, forkId, userId, `killed ${step}`)}`)
  }
  t.comment(outcomes.join('; '))
}

/**
 * Resolves when Redis runs a command (seen through MONITOR, which also shows the commands a
 * script runs) whose first key is `key`.
 */
const onCommand = (name: string, key: (forkId: string) => string) => async (monitor: Redis | undefined, forkId: string): Promise<void> => {
  await new Promise<void>((resolve) => {
    monitor?.on('monitor', (_time: string, [command, first]: string[]) => {
      if (command?.toUpperCase() === name && first === key(forkId)) resolve()
    })
  })
}
const after = (ms: number) => async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

// Started here, so that they outlive the apps each test builds (closed when it ends).
const server = await startRedis()
t.teardown(() => server.close())
const cluster = await startRedisCluster()
t.teardown(() => cluster.close())

t.test('on a single Redis, at each step of the fork', async (t) => {
  const target = { name: 'redis', url: server.url, env: { REDIS_URL: server.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_KEY_PREFIX: 'crash:' } }
  await run(t, target, [
    ['as it reads the source', onCommand('ZRANGE', () => 'crash:conv:{crash-source-redis}:order')],
    ['as it writes the index entry', onCommand('ZADD', () => 'crash:user:{crash-owner-redis}:index')],
    ['as it writes the fork', onCommand('DEL', (forkId) => `crash:conv:{${forkId}}`)],
    ['10 ms after the request', after(10)]
  ], true)
})

t.test('on a Redis Cluster, at times after the request', async (t) => {
  const target = { name: 'cluster', url: cluster.url, env: { REDIS_URL: cluster.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_CLUSTER: 'true', REDIS_KEY_PREFIX: 'crash:' } }
  await run(t, target, [['at once', after(0)], ['after 100 ms', after(100)], ['after 250 ms', after(250)], ['after 500 ms', after(500)], ['after 2 s', after(2000)]], false)
})
