import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { create, unique } from '../../helpers/api-suite.js'
import { build } from '../../helpers/build.js'
import { startRedisCluster } from '../../helpers/redis-cluster.js'
import { redisCli } from '../../helpers/redis-server.js'

// Cluster mode beyond the shared suite: TLS with certificate checks against the configured
// host name, the cluster state in /health, and a master failover under load.

const clusterEnv = (url: string): Record<string, string> => ({
  REDIS_URL: url, REDIS_CLUSTER: 'true', REDIS_KEY_PREFIX: `cluster-${process.pid}:`
})

t.test('TLS cluster: nodes announced by IP are verified against the configured host name', { timeout: 60_000 }, async (t) => {
  const cluster = await startRedisCluster({ tls: true })
  t.teardown(() => cluster.close())
  const port = new URL(cluster.url).port
  // localhost is only in the certificate as DNS:localhost; the nodes announce 127.0.0.1.
  const app = await build(t, { ...clusterEnv(`rediss://localhost:${port}`), REDIS_TLS_CA_FILE: cluster.caFile as string })
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200)
  t.match(health.json(), { backend: 'redis', store: { status: 'up', cluster: 'ok', connection: 'ready' } })
  const userId = unique('u')
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await create(app, { userId, messages: [{ role: 'user' }] })).id)
  const appended = await app.inject({ method: 'POST', url: `/v1/conversations/${ids[0] as string}/messages`, payload: { messages: [{ role: 'user' }] } })
  t.equal(appended.statusCode, 201)
  const page = (await app.inject({ method: 'GET', url: `/v1/users/${userId}/conversations?limit=3` })).json()
  t.equal(page.items.length, 3)
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/users/${userId}/conversations` })).json().deleted, 5)

  const otherCa = await build(t, { ...clusterEnv(`rediss://localhost:${port}`) }).then(() => 'started', (error: Error) => error.message)
  t.match(otherCa, /^Redis refused the connection/, 'an unverifiable certificate stops start-up')
})

t.test('a master dies under load: 503s during the failover, never a 500 or a hang, then recovery', { timeout: 120_000 }, async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const app = await build(t, { ...clusterEnv(cluster.url), REDIS_ALLOW_PLAINTEXT: 'true', REDIS_TIMEOUT: '1000', HEALTH_TIMEOUT_MS: '1000' })
  const userId = unique('u')
  const ids: string[] = []
  for (let i = 0; i < 30; i++) ids.push((await create(app, { userId })).id)

  const statuses = new Map<number, number>()
  const healthSeen = new Set<number>()
  const run = { stop: false }
  let lastFailureAt = 0
  let requests = 0
  const load = async (worker: number): Promise<void> => {
    for (let i = 0; !run.stop; i++) {
      const id = ids[(worker * 7 + i) % ids.length] as string
      const response = await (i % 2 === 0
        ? app.inject({ method: 'GET', url: `/v1/conversations/${id}` })
        : app.inject({ method: 'POST', url: `/v1/conversations/${id}/messages`, payload: { messages: [{ role: 'user' }] } }))
      requests++
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
      if (response.statusCode === 503) lastFailureAt = Date.now()
      if (response.statusCode === 503) await sleep(20)
    }
  }
  const watchHealth = async (): Promise<void> => {
    while (!run.stop) {
      healthSeen.add((await app.inject({ method: 'GET', url: '/health' })).statusCode)
      await sleep(100)
    }
  }

  const workers = [0, 1, 2, 3].map(load)
  const watcher = watchHealth()
  await sleep(500)
  const [victim] = await cluster.masters()
  const killedAt = Date.now()
  await cluster.killNode(victim?.port as number)
  await cluster.waitForFailover(victim?.port as number, 30_000)
  // Keep the load on until the service answers again by itself.
  let recoveredAt = 0
  for (let i = 0; i < 200 && recoveredAt === 0; i++) {
    const health = await app.inject({ method: 'GET', url: '/health' })
    if (health.statusCode === 200 && Date.now() - lastFailureAt > 1000) recoveredAt = Date.now()
    else await sleep(100)
  }
  run.stop = true
  await Promise.all([...workers, watcher])

  const counts = Object.fromEntries(statuses)
  t.comment(`failover: ${requests} requests, statuses ${JSON.stringify(counts)}, 503s seen for ${lastFailureAt === 0 ? 0 : lastFailureAt - killedAt} ms after the kill, healthy again after ${recoveredAt - killedAt} ms`)
  t.ok(recoveredAt > 0, 'the service recovered without a restart')
  t.same(Object.keys(counts).map(Number).filter((status) => ![200, 201, 503].includes(status)), [], 'only 200, 201 and 503')
  t.ok(healthSeen.has(503) && healthSeen.has(200), '/health reported both phases')
  const after = await app.inject({ method: 'POST', url: `/v1/conversations/${ids[0] as string}/messages`, payload: { messages: [{ role: 'user' }] } })
  t.equal(after.statusCode, 201)
})

t.test('Entra ID in cluster mode: every node is re-authenticated, and reconnects use the new token', { timeout: 120_000 }, async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const USER = 'svc-object-id'
  // ACL users are per node, as each Azure node checks the token itself.
  const onEveryNode = async (...args: string[]): Promise<void> => {
    for (const node of cluster.nodes) {
      const result = await redisCli(node, args)
      if (result.code !== 0 || /ERR/.test(result.stdout)) throw new Error(`${args.join(' ')} on ${node.port}: ${result.stdout}${result.stderr}`)
    }
  }
  const authCount = async (): Promise<number> => {
    let total = 0
    for (const node of cluster.nodes) total += Number(/cmdstat_auth:calls=(\d+)/.exec((await redisCli(node, ['INFO', 'commandstats'])).stdout)?.[1] ?? 0)
    return total
  }
  await onEveryNode('ACL', 'SETUSER', USER, 'reset', 'on', '>token-1', '~*', '&*', '+@all')
  const source = { current: 'token-1', calls: 0, async getToken () { source.calls++; return { token: source.current, expiresOnTimestamp: Date.now() + 2000 } } }
  const app = await build(t, { ...clusterEnv(cluster.url), REDIS_ALLOW_PLAINTEXT: 'true', REDIS_AUTH: 'entra', REDIS_USERNAME: USER }, { redisTokenSource: source })
  const userId = unique('u')
  const writeEverywhere = async (): Promise<boolean> => {
    // Ten ids land in different slots, so every master is asked.
    const statuses = await Promise.all(Array.from({ length: 10 }, async () =>
      (await app.inject({ method: 'POST', url: '/v1/conversations', payload: { userId } })).statusCode))
    return statuses.every((status) => status === 201)
  }
  const eventually = async (check: () => Promise<boolean>, what: string): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      if (await check()) return
      await sleep(100)
    }
    throw new Error(`timed out waiting for ${what}`)
  }
  t.ok(await writeEverywhere(), 'works with the first token')

  await onEveryNode('ACL', 'SETUSER', USER, '>token-2')
  source.current = 'token-2'
  const calls = source.calls
  const auths = await authCount()
  await eventually(async () => source.calls > calls, 'the refresh')
  // Every connection is re-authenticated: at least the three masters and the seed.
  await eventually(async () => await authCount() >= auths + 3, 'AUTH on the open connections')
  await onEveryNode('ACL', 'SETUSER', USER, '<token-1')
  t.ok(await writeEverywhere(), 'works after the rotation')
  await onEveryNode('CLIENT', 'KILL', 'USER', USER)
  await eventually(writeEverywhere, 'writes after every node dropped its connections')
  t.pass('every node accepted the new token on reconnect')
})
