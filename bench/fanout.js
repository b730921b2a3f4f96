import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { currentRss, startBenchServer, startService } from './processes.js'

// The fan-out rows of issue 20: a producer streams a 2,000-token reply in 5-token deltas
// (400 deltas) through one instance to FOLLOWERS followers of another instance, over real
// sockets, read by a process of their own (fanout-followers.js); then the same with
// resumable-stream 2.x on the same Redis. Measured: events
// delivered per second, the p99 from a delta's acknowledgement to its arrival at a follower,
// events lost, and the RSS each idle follower adds to its instance.

const FOLLOWERS = 1000
const DELTAS = 400
// The paced run: one delta every PACE_MS, the rate at which the client's streamMessage
// sends by default (at most one every 50 ms), and 100 tokens a second, as fast as hosted
// models stream. The other run sends each delta as soon as the one before is acknowledged:
// the most the path carries, where the producer outruns the fan-out, so that its latency
// measures the backlog rather than the delivery.
const PACE_MS = 50
const TEXT = ' five tokens of reply'
const json = { 'content-type': 'application/json' }

/**
 * Opens FOLLOWERS followers in a process of their own (fanout-followers.js); `seqOf` there
 * reads a delta's seq from an event of `kind`. Answers once every follower has its head.
 */
async function followers (url, headers, kind) {
  const dir = await mkdtemp(join(tmpdir(), 'fanout-'))
  const out = join(dir, 'arrivals.json')
  const profile = process.env.FANOUT_CPU_PROF
  const child = spawn(process.execPath, [...(profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', `${profile}/followers`]), 'bench/fanout-followers.js'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, FOLLOW_URL: url, FOLLOW_HEADERS: JSON.stringify(headers), FOLLOWERS: String(FOLLOWERS), EXPECTED: String(FOLLOWERS * DELTAS), KIND: kind, OUT: out }
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => { if (String(chunk).includes('ready')) resolve() })
    child.once('exit', (code) => reject(new Error(`the followers exited (${code}) before they were ready`)))
  })
  return {
    /** After the last delta: every arrival, as [seq, time] pairs. */
    arrivals: async () => {
      child.stdin.end('done\n')
      await exited
      const { seqs, times } = JSON.parse(await readFile(out, 'utf8'))
      await rm(dir, { recursive: true, force: true })
      return seqs.map((seq, i) => [seq, times[i]])
    }
  }
}

/**
 * Sends the deltas one after another (`send(seq)` answers once acknowledged), each at most
 * every `paceMs` (0: at once), then gathers every arrival.
 */
async function produce (send, opened, paceMs) {
  const acknowledged = new Array(DELTAS + 1)
  const now = () => performance.timeOrigin + performance.now()
  const started = now()
  for (let seq = 1; seq <= DELTAS; seq++) {
    const due = started + (seq - 1) * paceMs
    if (due > now()) await sleep(due - now())
    await send(seq)
    acknowledged[seq] = now()
  }
  const arrivals = await opened.arrivals()
  const last = arrivals.reduce((latest, [, at]) => Math.max(latest, at), started)
  const latencies = arrivals.map(([seq, at]) => Math.max(0, at - acknowledged[seq])).sort((a, b) => a - b)
  return {
    delivered: arrivals.length,
    lost: FOLLOWERS * DELTAS - arrivals.length,
    eventsPerSecond: Math.round(arrivals.length / ((last - started) / 1000)),
    p50Ms: round(latencies[Math.floor(latencies.length * 0.5)] ?? NaN),
    p99Ms: round(latencies[Math.floor(latencies.length * 0.99)] ?? NaN)
  }
}

/** The saturated run (with the RSS of idle followers), then the paced one, each on a fresh stream. */
async function bothRuns (servedPid, run) {
  const saturated = await run(0, (open) => idleRss(servedPid, open))
  const paced = await run(PACE_MS, async (open) => ({ opened: await open() }))
  return { ...saturated, paced }
}

const round = (x) => Math.round(x * 10) / 10

/** The RSS each of FOLLOWERS idle followers adds to the process that serves them, in KiB. */
async function idleRss (pid, open) {
  await sleep(500)
  const before = await currentRss(pid)
  const opened = await open()
  await sleep(1000)
  return { opened, rssPerFollowerKiB: round((await currentRss(pid) - before) / FOLLOWERS / 1024) }
}

async function ours (redisUrl) {
  const env = { REDIS_URL: redisUrl, REDIS_ALLOW_PLAINTEXT: 'true', EVENTS_MAX_CONNECTIONS: String(FOLLOWERS * 2), RATE_LIMIT_PER_MINUTE: '' }
  const producer = await startService(env)
  // FANOUT_CPU_PROF=<dir> profiles the serving instance (node --cpu-prof).
  const profile = process.env.FANOUT_CPU_PROF
  const served = await startService(env, { nodeArgs: profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile] })
  try {
    return await bothRuns(served.pid, async (paceMs, withFollowers) => {
      const id = `fanout-${paceMs}-${Date.now()}`
      await fetch(`${producer.url}/v1/conversations`, { method: 'POST', headers: json, body: JSON.stringify({ id, userId: 'fanout' }) })
      const started = await fetch(`${producer.url}/v1/conversations/${id}/messages`, {
        method: 'POST', headers: json, body: JSON.stringify({ messages: [{ id: 'r', role: 'assistant', status: 'in_progress' }] })
      })
      const position = started.headers.get('last-event-id')
      const { opened, rssPerFollowerKiB } = await withFollowers(() => followers(`${served.url}/v1/conversations/${id}/events`, { 'last-event-id': position }, 'service'))
      const result = await produce(async (seq) => {
        const response = await fetch(`${producer.url}/v1/conversations/${id}/messages/r/deltas`, { method: 'POST', headers: json, body: JSON.stringify({ seq, text: TEXT }) })
        if (response.status !== 200) throw new Error(`delta ${seq}: ${response.status} ${await response.text()}`)
        await response.arrayBuffer()
      }, opened, paceMs)
      return { ...result, rssPerFollowerKiB }
    })
  } finally {
    await producer.stop()
    await served.stop()
  }
}

async function peer (redisUrl) {
  const producer = await startBenchServer('resumable-peer-server.js', { REDIS_URL: redisUrl })
  const served = await startBenchServer('resumable-peer-server.js', { REDIS_URL: redisUrl })
  try {
    return await bothRuns(served.pid, async (paceMs, withFollowers) => {
      const id = `fanout-${paceMs}-${Date.now()}`
      await fetch(`${producer.url}/streams/${id}`, { method: 'POST' })
      const { opened, rssPerFollowerKiB } = await withFollowers(() => followers(`${served.url}/streams/${id}`, {}, 'peer'))
      const result = await produce(async (seq) => {
        const response = await fetch(`${producer.url}/streams/${id}/deltas`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${seq}|${TEXT}` })
        await response.arrayBuffer()
      }, opened, paceMs)
      await fetch(`${producer.url}/streams/${id}/end`, { method: 'POST' })
      return { ...result, rssPerFollowerKiB }
    })
  } finally {
    await producer.stop()
    await served.stop()
  }
}

/** Both rows, each on its own services, on one Redis. */
export async function fanoutRows (redisUrl) {
  process.stderr.write(`fan-out: ${DELTAS} deltas to ${FOLLOWERS} followers on another instance (service, then resumable-stream)\n`)
  const service = await ours(redisUrl)
  process.stderr.write(`  service: ${JSON.stringify(service)}\n`)
  const resumable = await peer(redisUrl)
  process.stderr.write(`  resumable-stream: ${JSON.stringify(resumable)}\n`)
  return { followers: FOLLOWERS, deltas: DELTAS, paceMs: PACE_MS, service, resumable }
}
