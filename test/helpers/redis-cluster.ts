import { rmSync } from 'node:fs'
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, killProcess, runCommand, serviceEnv, spawnProcess, type SpawnedProcess } from './process.js'
import { makeCertificates, redisCli, type Certificates, type RedisCliResult } from './redis-server.js'

// A real, throw-away Redis Cluster for tests: six `redis-server` processes in cluster mode
// (three masters, one replica each) on free ports of 127.0.0.1, joined with
// `redis-cli --cluster create`. Driven only through child_process and `redis-cli`, like
// redis-server.ts. Nothing is persisted; the cluster lives in one temporary folder (the
// nodes-<port>.conf files and the certificates at its top, one `dir` per node below it) and
// is killed when the test process exits at the latest. Callers should still
// `t.teardown(() => cluster.close())`.

export interface StartRedisClusterOptions {
  /**
   * TLS only (plain ports disabled) for clients, the cluster bus and replication, with one
   * CA and server certificate made in the temporary folder.
   */
  tls?: boolean
}

export interface ClusterNodeAddress {
  host: string
  port: number
}

export interface ClusterMaster {
  port: number
  /** The pid of our process on that port; undefined if it is not running any more. */
  pid: number | undefined
  /** The cluster node id. */
  id: string
  /** The slot ranges it serves, inclusive. */
  slots: Array<[number, number]>
}

export type ClusterState = 'ok' | 'fail'

export interface RedisCluster {
  /** The six startup nodes, `{ host: '127.0.0.1', port }`. */
  readonly nodes: ClusterNodeAddress[]
  /** `redis://127.0.0.1:<first port>`, or `rediss://…` for TLS. */
  readonly url: string
  readonly tls: boolean
  /** The CA that signed the nodes' certificate (TLS only). */
  readonly caFile: string | undefined
  /** The cluster's temporary folder. */
  readonly dir: string
  /** The masters that are not flagged `fail`, per `CLUSTER NODES` of a live node, by port. */
  masters: () => Promise<ClusterMaster[]>
  /** SIGKILLs the node on `port` and waits for it to exit. */
  killNode: (port: number) => Promise<void>
  /** Polls `CLUSTER INFO` on every node still alive until they all report `cluster_state:<state>`. */
  waitForState: (state: ClusterState, timeoutMs: number) => Promise<void>
  /**
   * After `killNode(killedPort)` of a master: waits until every live node sees one of its
   * replicas promoted to master, the killed node serving no slots, and `cluster_state:ok`.
   * Resolves with the port of the promoted replica.
   */
  waitForFailover: (killedPort: number, timeoutMs: number) => Promise<number>
  /** Kills every node and removes the temporary folder. Idempotent. */
  close: () => Promise<void>
}

const nodeCount = 6
const busPortOffset = 10_000
const maxPort = 65_535 - busPortOffset
const startTimeoutMs = 30_000
const nodeReadyTimeoutMs = 10_000
const slotCount = 16_384

interface ClusterNode {
  port: number
  dir: string
  proc: SpawnedProcess | undefined
  /** Output of earlier attempts on other ports, if any. */
  log: string
}

interface ClusterEntry { nodes: ClusterNode[], dir: string }

/** What a killed master looked like just before it was killed. */
interface KilledMaster { id: string, replicaPorts: number[] }

/** One line of `CLUSTER NODES`. */
interface NodeLine {
  id: string
  port: number
  flags: string[]
  masterId: string
  /** `connected` or `disconnected`: the link of the node we asked to this one. */
  linkState: string
  slots: Array<[number, number]>
}

// Last resort against leaked processes and folders, as in redis-server.ts.
const openClusters = new Set<ClusterEntry>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const cluster of openClusters) {
      for (const node of cluster.nodes) {
        try { node.proc?.child.kill('SIGKILL') } catch {}
      }
      try { rmSync(cluster.dir, { recursive: true, force: true }) } catch {}
    }
    openClusters.clear()
  })
}

function tail (text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

function isRunning (proc: SpawnedProcess | undefined): boolean {
  return proc !== undefined && proc.result === undefined && proc.child.exitCode === null && proc.child.signalCode === null
}

/** The pid of the process while it runs, else undefined. */
function runningPid (proc: SpawnedProcess | undefined): number | undefined {
  return isRunning(proc) ? proc?.child.pid : undefined
}

function nodeOutput (node: ClusterNode): string {
  return `${node.log}${node.proc?.stdout ?? ''}${node.proc?.stderr ?? ''}`
}

function describeReply (reply: RedisCliResult): string {
  return reply.timedOut ? 'timed out' : `${reply.stdout}${reply.stderr}`.trim()
}

/** True if nothing listens on 127.0.0.1:port right now. */
async function canListen (port: number): Promise<boolean> {
  const server = createServer()
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()))
  return ok
}

/**
 * A free port P ≤ 55535 whose cluster bus port P + 10000 is free as well, and that clashes
 * with none of the ports in `taken` (which it then extends with both).
 */
async function pickPorts (taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await freePort()
    const bus = port + busPortOffset
    if (port > maxPort || taken.has(port) || taken.has(bus)) continue
    if (!await canListen(bus)) continue
    taken.add(port)
    taken.add(bus)
    return port
  }
  throw new Error('could not find a free port whose cluster bus port (+10000) is free too')
}

interface ClientCertificate { certFile: string, keyFile: string }

/**
 * With `--tls-cluster yes` every node *requires* a client certificate on the cluster bus
 * (`--tls-auth-clients no` only covers the client port), and by default presents its
 * `--tls-cert-file`. The one `makeCertificates` makes is limited to `extendedKeyUsage =
 * serverAuth`, so peers reject it ("certificate verify failed") and the nodes never join.
 * So each node also gets (`--tls-client-cert-file`) a client certificate signed by the same
 * CA, whose key `makeCertificates` leaves in `dir/ca.key`.
 */
async function makeClientCertificate (dir: string): Promise<ClientCertificate> {
  const caKey = join(dir, 'ca.key')
  const caFile = join(dir, 'ca.crt')
  await access(caKey).catch((error: unknown) => {
    throw new Error(`the CA key ${caKey} from makeCertificates is needed to sign the cluster bus client certificate`, { cause: error })
  })
  const reqConfig = join(dir, 'client-req.cnf')
  const extFile = join(dir, 'client.ext')
  const csrFile = join(dir, 'client.csr')
  const keyFile = join(dir, 'client.key')
  const certFile = join(dir, 'client.crt')
  await writeFile(reqConfig, '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n')
  await writeFile(extFile, [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = clientAuth',
    'authorityKeyIdentifier = keyid',
    ''
  ].join('\n'))
  const env = serviceEnv()
  await runCommand('openssl', [
    'req', '-new', '-config', reqConfig, '-newkey', 'rsa:2048', '-nodes',
    '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=redis-cluster-node'
  ], { env })
  await runCommand('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(Date.now() + 1),
    '-days', '1', '-sha256', '-extfile', extFile, '-out', certFile
  ], { env })
  return { certFile, keyFile }
}

/** `key:value` lines of INFO-like output. */
function parseInfo (text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return fields
}

/** Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...` */
function parseClusterNodes (text: string): NodeLine[] {
  const lines: NodeLine[] = []
  for (const line of text.split(/\r?\n/)) {
    const [id, address, flags, masterId, , , , linkState, ...slotTokens] = line.trim().split(' ')
    if (id === undefined || address === undefined || flags === undefined || masterId === undefined || linkState === undefined) continue
    const hostPort = address.split(/[@,]/)[0] ?? ''
    const port = Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))
    if (!Number.isInteger(port)) continue
    const slots: Array<[number, number]> = []
    for (const token of slotTokens) {
      // Skip migrating/importing markers such as `[42->-id]`.
      const match = /^(\d+)(?:-(\d+))?$/.exec(token)
      if (match === null) continue
      const from = Number(match[1])
      slots.push([from, match[2] === undefined ? from : Number(match[2])])
    }
    lines.push({ id, port, flags: flags.split(','), masterId, linkState, slots })
  }
  return lines
}

/**
 * Starts six cluster-mode `redis-server`s on 127.0.0.1 (TLS-only if `tls`), joins them with
 * `redis-cli --cluster create … --cluster-replicas 1`, and resolves once every node reports
 * `cluster_state:ok` with all 16384 slots assigned, knows all six nodes, every replica's
 * link to its master is up (a replica that never synced would refuse to fail over), and all
 * nodes agree in `CLUSTER NODES` on three masters and who replicates whom (right after
 * `--cluster create`, some nodes still list a replica as a slot-less master).
 */
export async function startRedisCluster (options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const { tls = false } = options
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-test-'))
  const nodes: ClusterNode[] = []
  const entry: ClusterEntry = { nodes, dir }
  openClusters.add(entry)
  installExitHook()

  let certificates: Certificates | undefined
  let clientCertificate: ClientCertificate | undefined
  let closing: Promise<void> | undefined
  const killed = new Map<number, KilledMaster | undefined>()
  const startedAt = Date.now()

  const cli = async (port: number, args: readonly string[], timeoutMs = 2_000): Promise<RedisCliResult> =>
    await redisCli({ port, caFile: certificates?.caFile }, args, { timeoutMs })

  const liveNodes = (): ClusterNode[] => nodes.filter((node) => isRunning(node.proc))

  const nodeByPort = (port: number): ClusterNode => {
    const node = nodes.find((node) => node.port === port)
    if (node === undefined) throw new Error(`no node of this cluster on port ${port}`)
    return node
  }

  const describeNodes = (): string => nodes.map((node) =>
    `--- redis-server on port ${node.port} (${runningPid(node.proc) === undefined ? 'not running' : `pid ${runningPid(node.proc)}`}), last lines:\n${tail(nodeOutput(node))}`
  ).join('\n')

  const args = (node: ClusterNode): string[] => {
    const common = [
      '--bind', '127.0.0.1', '--daemonize', 'no', '--dir', node.dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${node.port}.conf`),
      '--cluster-node-timeout', '2000', '--appendonly', 'no', '--save', '',
      // Masters otherwise wait 5 s for more replicas before a diskless full sync, and a
      // replica that never synced refuses to fail over; no reason to wait here.
      '--repl-diskless-sync-delay', '0'
    ]
    if (certificates === undefined || clientCertificate === undefined) return ['--port', String(node.port), ...common]
    return [
      '--port', '0', '--tls-port', String(node.port),
      '--tls-cluster', 'yes', '--tls-replication', 'yes',
      '--tls-cert-file', certificates.certFile, '--tls-key-file', certificates.keyFile,
      '--tls-client-cert-file', clientCertificate.certFile, '--tls-client-key-file', clientCertificate.keyFile,
      '--tls-ca-cert-file', certificates.caFile, '--tls-auth-clients', 'no',
      ...common
    ]
  }

  /** Polls PING (and checks that our process answered) until ready; throws if it exits. */
  const waitForPong = async (node: ClusterNode, proc: SpawnedProcess): Promise<void> => {
    const deadline = Date.now() + nodeReadyTimeoutMs
    let last = 'no attempt made'
    while (Date.now() < deadline) {
      if (!isRunning(proc)) {
        const { code, signal } = await proc.exited
        throw new Error(`redis-server on port ${node.port} exited (code ${code}, signal ${signal}) before answering PING`)
      }
      const reply = await cli(node.port, ['ping'], 1_000)
      if (reply.code === 0 && reply.stdout.trim() === 'PONG') {
        const info = parseInfo((await cli(node.port, ['info', 'server'], 1_000)).stdout)
        if (Number(info.get('process_id')) === proc.child.pid) return
        last = `PONG from process ${info.get('process_id') ?? 'unknown'}, not from ${proc.child.pid ?? 'ours'}`
      } else {
        last = describeReply(reply)
      }
      await sleep(50)
    }
    throw new Error(`redis-server on port ${node.port} did not answer PING within ${nodeReadyTimeoutMs} ms (last: ${last})`)
  }

  /** Starts one node, moving to other ports while its port or bus port turns out to be taken. */
  const launch = async (taken: Set<number>): Promise<void> => {
    const node: ClusterNode = { port: await pickPorts(taken), dir: '', proc: undefined, log: '' }
    nodes.push(node)
    for (let attempt = 1; ; attempt++) {
      node.dir = join(dir, `node-${node.port}`)
      await mkdir(node.dir, { recursive: true })
      node.proc = spawnProcess('redis-server', args(node), { cwd: node.dir, env: serviceEnv() })
      try {
        await waitForPong(node, node.proc)
        return
      } catch (error) {
        const output = nodeOutput(node)
        await killProcess(node.proc)
        if (!/address already in use/i.test(output) || attempt >= 3) throw error
        node.log = `${output}\n--- port ${node.port} or ${node.port + busPortOffset} was taken; retrying on another port ---\n`
        node.port = await pickPorts(taken)
      }
    }
  }

  /**
   * Why the `CLUSTER NODES` view of `port` is not yet the final one, or its summary: three
   * masters with slots and three replicas of them, all connected, none flagged as failing.
   */
  const topology = async (port: number): Promise<{ problem: string } | { summary: string }> => {
    const reply = await cli(port, ['cluster', 'nodes'])
    const lines = parseClusterNodes(reply.stdout)
    if (lines.length !== nodeCount) return { problem: `node ${port} lists ${lines.length} nodes: ${describeReply(reply)}` }
    const masterIds = new Set(lines.filter((line) => line.flags.includes('master') && line.slots.length > 0).map((line) => line.id))
    for (const line of lines) {
      const bad = line.flags.filter((flag) => ['fail', 'fail?', 'handshake', 'noaddr', 'nofailover'].includes(flag))
      if (bad.length > 0) return { problem: `node ${port} sees ${line.port} as ${bad.join(',')}` }
      if (line.linkState !== 'connected') return { problem: `node ${port} sees ${line.port} ${line.linkState}` }
      const ok = masterIds.has(line.id) || (line.flags.includes('slave') && masterIds.has(line.masterId))
      if (!ok) return { problem: `node ${port} sees ${line.port} as ${line.flags.join(',')}, neither a master with slots nor a replica of one` }
    }
    if (masterIds.size !== nodeCount / 2) return { problem: `node ${port} sees ${masterIds.size} masters with slots` }
    const summary = lines
      .map((line) => `${line.id}:${masterIds.has(line.id) ? 'master' : `replica-of-${line.masterId}`}`)
      .sort()
      .join(' ')
    return { summary }
  }

  /** Why the cluster is not ready yet, or undefined once it is. */
  const notReady = async (): Promise<string | undefined> => {
    const summaries = new Set<string>()
    for (const node of nodes) {
      if (!isRunning(node.proc)) return `node ${node.port} is not running`
      const info = await cli(node.port, ['cluster', 'info'])
      const fields = parseInfo(info.stdout)
      if (fields.get('cluster_state') !== 'ok') return `node ${node.port}: ${fields.get('cluster_state') === undefined ? describeReply(info) : `cluster_state:${fields.get('cluster_state')}`}`
      if (fields.get('cluster_slots_assigned') !== String(slotCount)) return `node ${node.port}: cluster_slots_assigned:${fields.get('cluster_slots_assigned')}`
      if (fields.get('cluster_known_nodes') !== String(nodeCount)) return `node ${node.port}: cluster_known_nodes:${fields.get('cluster_known_nodes')}`
      const replication = parseInfo((await cli(node.port, ['info', 'replication'])).stdout)
      if (replication.get('role') === 'slave' && replication.get('master_link_status') !== 'up') {
        return `replica ${node.port}: master_link_status:${replication.get('master_link_status')}`
      }
      const view = await topology(node.port)
      if ('problem' in view) return view.problem
      summaries.add(view.summary)
    }
    if (summaries.size !== 1) return `the nodes disagree on who replicates whom:\n${[...summaries].join('\n')}`
    return undefined
  }

  try {
    if (tls) {
      certificates = await makeCertificates(dir)
      clientCertificate = await makeClientCertificate(dir)
    }
    const taken = new Set<number>()
    for (let i = 0; i < nodeCount; i++) await launch(taken)

    const create = await cli(nodes[0]!.port, [
      '--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas', '1', '--cluster-yes'
    ], Math.max(1_000, startedAt + startTimeoutMs - Date.now()))
    if (create.code !== 0 || !/\[OK\] All 16384 slots covered/.test(create.stdout)) {
      throw new Error(`redis-cli --cluster create failed (${create.timedOut ? 'timed out' : `exit code ${create.code}`}):\n${tail(`${create.stdout}${create.stderr}`, 40)}`)
    }

    let last: string | undefined = 'no attempt made'
    while (Date.now() < startedAt + startTimeoutMs) {
      last = await notReady()
      if (last === undefined) break
      await sleep(100)
    }
    if (last !== undefined) throw new Error(`the cluster was not ready within ${startTimeoutMs} ms (last: ${last})`)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const failure = new Error(`starting the Redis Cluster failed: ${message}\n${describeNodes()}`, { cause: error })
    await Promise.all(nodes.map(async (node) => { if (node.proc !== undefined) await killProcess(node.proc) }))
    openClusters.delete(entry)
    await rm(dir, { recursive: true, force: true })
    throw failure
  }

  const clusterNodes = async (port: number): Promise<NodeLine[]> => {
    const reply = await cli(port, ['cluster', 'nodes'])
    if (reply.code !== 0 || reply.stdout.trim() === '') throw new Error(`CLUSTER NODES failed on port ${port}: ${describeReply(reply)}`)
    return parseClusterNodes(reply.stdout)
  }

  const anyLivePort = (): number => {
    const node = liveNodes()[0]
    if (node === undefined) throw new Error('no node of the cluster is running')
    return node.port
  }

  const masters = async (): Promise<ClusterMaster[]> => {
    const lines = await clusterNodes(anyLivePort())
    return lines
      .filter((line) => line.flags.includes('master') && !line.flags.includes('fail'))
      .map((line) => {
        const proc = nodes.find((node) => node.port === line.port)?.proc
        return { port: line.port, pid: runningPid(proc), id: line.id, slots: line.slots }
      })
      .sort((a, b) => a.port - b.port)
  }

  /** Polls `check` until it returns undefined; throws with its last answer when time is up. */
  const poll = async (what: string, timeoutMs: number, check: () => Promise<string | undefined>): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    let last: string | undefined
    do {
      last = await check()
      if (last === undefined) return
      await sleep(100)
    } while (Date.now() < deadline)
    throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${last})`)
  }

  const stateOf = async (node: ClusterNode): Promise<string> => {
    const reply = await cli(node.port, ['cluster', 'info'], 1_000)
    return parseInfo(reply.stdout).get('cluster_state') ?? describeReply(reply)
  }

  const waitForState = async (state: ClusterState, timeoutMs: number): Promise<void> => {
    await poll(`cluster_state:${state} on every live node`, timeoutMs, async () => {
      const live = liveNodes()
      if (live.length === 0) return 'no node is running'
      for (const node of live) {
        const current = await stateOf(node)
        if (current !== state) return `node ${node.port}: cluster_state:${current}`
      }
      return undefined
    })
  }

  return {
    nodes: nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${nodes[0]!.port}`,
    tls,
    caFile: certificates?.caFile,
    dir,
    masters,
    async killNode (port: number) {
      const node = nodeByPort(port)
      const proc = node.proc
      if (proc === undefined || !isRunning(proc)) throw new Error(`the node on port ${port} is not running`)
      // Remember what it was, for waitForFailover: its id and replicas, if it was a master.
      let before: KilledMaster | undefined
      const others = liveNodes().filter((other) => other !== node)
      if (others.length > 0) {
        const lines = await clusterNodes(others[0]!.port)
        const self = lines.find((line) => line.port === port)
        if (self?.flags.includes('master') === true) {
          before = { id: self.id, replicaPorts: lines.filter((line) => line.masterId === self.id).map((line) => line.port) }
        }
      }
      killed.set(port, before)
      await killProcess(proc, 'SIGKILL')
    },
    waitForState,
    async waitForFailover (killedPort: number, timeoutMs: number) {
      if (!killed.has(killedPort)) throw new Error(`the node on port ${killedPort} was not killed with killNode()`)
      const before = killed.get(killedPort)
      if (before === undefined) throw new Error(`the node on port ${killedPort} was not a master when it was killed`)
      if (before.replicaPorts.length === 0) throw new Error(`the master on port ${killedPort} had no replica`)
      let promoted: number | undefined
      await poll(`failover of the master on port ${killedPort}`, timeoutMs, async () => {
        const live = liveNodes()
        if (live.length === 0) return 'no node is running'
        let seen: number | undefined
        for (const node of live) {
          const lines = await clusterNodes(node.port).catch(() => [])
          const replica = lines.find((line) => before.replicaPorts.includes(line.port) && line.flags.includes('master') && !line.flags.includes('fail') && line.slots.length > 0)
          if (replica === undefined) return `node ${node.port} sees no replica of ${killedPort} (${before.replicaPorts.join(', ')}) promoted yet`
          if (seen !== undefined && seen !== replica.port) return `nodes disagree on the new master (${seen} or ${replica.port})`
          seen = replica.port
          const old = lines.find((line) => line.id === before.id)
          if (old !== undefined && old.slots.length > 0) return `node ${node.port} still sees slots on ${killedPort}`
          const state = await stateOf(node)
          if (state !== 'ok') return `node ${node.port}: cluster_state:${state}`
        }
        promoted = seen
        return undefined
      })
      return promoted!
    },
    async close () {
      closing ??= (async () => {
        await Promise.all(nodes.map(async (node) => { if (node.proc !== undefined) await killProcess(node.proc, 'SIGKILL') }))
        openClusters.delete(entry)
        await rm(dir, { recursive: true, force: true })
      })()
      await closing
    }
  }
}
