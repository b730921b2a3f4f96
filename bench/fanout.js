import { setTimeout as sleep } from 'node:timers/promises'
import { createParser } from 'eventsource-parser'
import { currentRss, startBenchServer, startService } from './processes.js'

// The fan-out rows of issue 20: a producer streams a 2,000-token reply in 5-token deltas
// (400 deltas) through one instance to FOLLOWERS followers of another instance, over real
// sockets; then the same with resumable-stream 2.x on the same Redis. Measured: events
// delivered per second, the p99 from a delta's acknowledgement to its arrival at a follower,
// events lost, and the RSS each idle follower adds to its instance.

const FOLLOWERS = 1000
const DELTAS = 400
const TEXT = ' five tokens of reply'
const json = { 'content-type': 'application/json' }

/** One follower over fetch; `onEvent` sees each event (eventsource-parser). */
async function follow (url, headers, onEvent) {
  const abort = new AbortController()
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal })
  if (response.status !== 200) throw new Error(`follow ${url}: ${response.status} ${await response.text()}`)
  const parser = createParser({ onEvent })
  const decoder = new TextDecoder()
  const done = (async () => {
    try {
      for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }))
    } catch {}
  })()
  return { close: () => abort.abort(), done }
}

/** Opens `count` followers, 50 at a time; `seqOf` reads a delta's seq from an event (undefined: not a delta). */
async function followers (url, headers, seqOf, arrivals) {
  const opened = []
  for (let i = 0; i < FOLLOWERS; i += 50) {
    opened.push(...await Promise.all(Array.from({ length: Math.min(50, FOLLOWERS - i) }, () =>
      follow(url, headers, (event) => {
        const seq = seqOf(event)
        if (seq !== undefined) arrivals.push([seq, performance.now()])
      }))))
  }
  return opened
}

/** Sends the deltas one after another (`send(seq)` answers once acknowledged), then waits for every arrival. */
async function produce (send, arrivals) {
  const acknowledged = new Array(DELTAS + 1)
  const started = performance.now()
  for (let seq = 1; seq <= DELTAS; seq++) {
    await send(seq)
    acknowledged[seq] = performance.now()
  }
  for (let waited = 0; arrivals.length < FOLLOWERS * DELTAS && waited < 60_000; waited += 50) await sleep(50)
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
  const served = await startService(env)
  try {
    const id = `fanout-${Date.now()}`
    await fetch(`${producer.url}/v1/conversations`, { method: 'POST', headers: json, body: JSON.stringify({ id, userId: 'fanout' }) })
    const started = await fetch(`${producer.url}/v1/conversations/${id}/messages`, {
      method: 'POST', headers: json, body: JSON.stringify({ messages: [{ id: 'r', role: 'assistant', status: 'in_progress' }] })
    })
    const position = started.headers.get('last-event-id')
    const arrivals = []
    const seqOf = (event) => event.event === 'message.delta' ? JSON.parse(event.data).seq : undefined
    const { opened, rssPerFollowerKiB } = await idleRss(served.pid, () => followers(`${served.url}/v1/conversations/${id}/events`, { 'last-event-id': position }, seqOf, arrivals))
    const result = await produce(async (seq) => {
      const response = await fetch(`${producer.url}/v1/conversations/${id}/messages/r/deltas`, { method: 'POST', headers: json, body: JSON.stringify({ seq, text: TEXT }) })
      if (response.status !== 200) throw new Error(`delta ${seq}: ${response.status} ${await response.text()}`)
      await response.arrayBuffer()
    }, arrivals)
    for (const follower of opened) follower.close()
    return { ...result, rssPerFollowerKiB }
  } finally {
    await producer.stop()
    await served.stop()
  }
}

async function peer (redisUrl) {
  const producer = await startBenchServer('resumable-peer-server.js', { REDIS_URL: redisUrl })
  const served = await startBenchServer('resumable-peer-server.js', { REDIS_URL: redisUrl })
  try {
    const id = `fanout-${Date.now()}`
    await fetch(`${producer.url}/streams/${id}`, { method: 'POST' })
    const arrivals = []
    const seqOf = (event) => Number(event.data.split('|')[0])
    const { opened, rssPerFollowerKiB } = await idleRss(served.pid, () => followers(`${served.url}/streams/${id}`, {}, seqOf, arrivals))
    const result = await produce(async (seq) => {
      const response = await fetch(`${producer.url}/streams/${id}/deltas`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${seq}|${TEXT}` })
      await response.arrayBuffer()
    }, arrivals)
    await fetch(`${producer.url}/streams/${id}/end`, { method: 'POST' })
    for (const follower of opened) follower.close()
    return { ...result, rssPerFollowerKiB }
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
  return { followers: FOLLOWERS, deltas: DELTAS, service, resumable }
}
