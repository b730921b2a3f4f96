import { existsSync } from 'node:fs'
import t from 'tap'
import { redisCli } from './helpers/redis-server.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

// Checks the real Redis Cluster test harness itself, with plain `redis-cli -c`.

/** The CLUSTER INFO `cluster_state` of the node on `port`. */
async function clusterState (port: number, caFile?: string): Promise<string | undefined> {
  const reply = await redisCli({ port, caFile }, ['cluster', 'info'])
  return /^cluster_state:(\w+)/m.exec(reply.stdout)?.[1]
}

t.test('plain cluster: redirects, three masters, failover', async (t) => {
  let started = Date.now()
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  t.comment(`plain cluster started in ${Date.now() - started} ms`)

  const ports = cluster.nodes.map((node) => node.port)
  t.equal(ports.length, 6)
  t.equal(new Set(ports).size, 6, 'six distinct ports')
  t.ok(ports.every((port) => port <= 55_535), 'every bus port (+10000) is a valid port')
  t.same(cluster.nodes[0], { host: '127.0.0.1', port: ports[0] })
  t.equal(cluster.url, `redis://127.0.0.1:${ports[0]}`)
  t.equal(cluster.tls, false)
  t.equal(cluster.caFile, undefined)

  for (const port of ports) t.equal(await clusterState(port), 'ok', `node ${port} reports cluster_state:ok`)

  const set = await redisCli({ port: ports[0]! }, ['-c', 'set', 'foo', 'bar'])
  t.equal(set.stdout.trim(), 'OK', 'SET through redis-cli -c')
  for (const port of ports) {
    const get = await redisCli({ port }, ['-c', 'get', 'foo'])
    t.equal(get.stdout.trim(), 'bar', `GET through redis-cli -c from node ${port}`)
  }

  const masters = await cluster.masters()
  t.equal(masters.length, 3, 'three masters')
  t.ok(masters.every((master) => ports.includes(master.port) && typeof master.pid === 'number'), 'masters are our live processes')
  t.equal(masters.flatMap((master) => master.slots).reduce((sum, [from, to]) => sum + to - from + 1, 0), 16_384, 'masters serve all slots')

  const victim = masters[0]!
  await cluster.killNode(victim.port)
  t.equal((await redisCli({ port: victim.port }, ['ping'])).code, 1, 'the killed node no longer answers')

  started = Date.now()
  const promoted = await cluster.waitForFailover(victim.port, 20_000)
  t.comment(`failover of ${victim.port} to ${promoted} took ${Date.now() - started} ms`)
  t.ok(ports.includes(promoted) && promoted !== victim.port, 'a replica was promoted')

  await cluster.waitForState('ok', 5_000)
  for (const port of ports.filter((port) => port !== victim.port)) {
    t.equal(await clusterState(port), 'ok', `node ${port} reports cluster_state:ok again`)
  }
  const after = await cluster.masters()
  t.same(after.map((master) => master.port).sort(), [...masters.filter((m) => m !== victim).map((m) => m.port), promoted].sort(), 'the promoted replica replaced the killed master')
  const alive = ports.find((port) => port !== victim.port && port !== promoted)!
  t.equal((await redisCli({ port: alive }, ['-c', 'set', 'foo', 'baz'])).stdout.trim(), 'OK', 'writes work after the failover')
  await t.rejects(cluster.waitForFailover(alive, 100), /was not killed with killNode/)

  // The promoted master has no replica left: killing it leaves slots uncovered.
  await cluster.killNode(promoted)
  await cluster.waitForState('fail', 10_000)
  t.equal(await clusterState(alive), 'fail', 'cluster_state:fail without a master for some slots')

  await cluster.close()
  await cluster.close()
  t.notOk(existsSync(cluster.dir), 'close removed the folder')
  t.equal((await redisCli({ port: alive }, ['ping'])).code, 1, 'close killed the nodes')
})

t.test('TLS cluster: redis-cli -c --tls works', async (t) => {
  const started = Date.now()
  const cluster = await startRedisCluster({ tls: true })
  t.teardown(() => cluster.close())
  t.comment(`TLS cluster started in ${Date.now() - started} ms`)

  const caFile = cluster.caFile
  if (caFile === undefined) throw new Error('a TLS cluster must have a CA file')
  const port = cluster.nodes[0]!.port
  t.equal(cluster.tls, true)
  t.equal(cluster.url, `rediss://127.0.0.1:${port}`)

  t.equal((await redisCli({ port, caFile }, ['-c', 'set', 'x', '1'])).stdout.trim(), 'OK', 'SET through redis-cli -c --tls')
  for (const node of cluster.nodes) {
    t.equal((await redisCli({ port: node.port, caFile }, ['-c', 'get', 'x'])).stdout.trim(), '1', `GET through node ${node.port}`)
  }
  t.equal((await cluster.masters()).length, 3, 'three masters')
  t.not((await redisCli({ port }, ['ping'])).stdout.trim(), 'PONG', 'no plain-text service on the TLS port')
})
