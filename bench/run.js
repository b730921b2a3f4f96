import autocannon from 'autocannon'
import { writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { conversation, messages } from './fixtures.js'
import { historyRows } from './history-rows.js'
import { messageRows, tokenCountingMicros } from './message-rows.js'
import { currentRss, peakRss, redisCeiling, startBenchServer, startRedis, startService } from './processes.js'
import { readPathRows, startPeers } from './read-path.js'
import { ratio, targetsOf } from './targets.js'
import { tracingRows } from './tracing-rows.js'
import { fanoutRows } from './fanout.js'

// npm run bench [-- --duration 10 --connections 50 --scenarios get,append]
// Every figure is measured in this run, and targets are ratios against ceilings measured
// in the same run, because this machine is shared and absolute numbers drift.

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    scenarios: { type: 'string', default: 'ceilings,get,put,append,list,mixed,messages,plain,tracing,memory,history,fanout' }
  }
})
const duration = Number(options.duration)
const connections = Number(options.connections)
const scenarios = new Set(options.scenarios.split(','))
const POOL = 1000
const json = { 'content-type': 'application/json' }

const rows = []
const pick = (count) => Math.floor(Math.random() * count)

async function load (title, url, requests, extra = {}) {
  const result = await autocannon({ url, connections, duration, requests, ...extra })
  const row = {
    title,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    errors: result.errors + result.timeouts + result.non2xx
  }
  rows.push(row)
  process.stderr.write(`  ${title}: ${row.rps} req/s, p99 ${row.p99} ms, errors ${row.errors}\n`)
  return row
}

/** POSTs `count` bodies (creates, or to `pathOf(i)`), as fast as the service takes them. */
async function seed (url, count, body, pathOf = () => '/v1/conversations') {
  let next = 0
  const result = await autocannon({
    url,
    connections: Math.min(64, count),
    amount: count,
    requests: [{
      method: 'POST',
      headers: json,
      setupRequest: (request) => { const i = next++; return { ...request, path: pathOf(i), body: JSON.stringify(body(i)) } }
    }]
  })
  if (result.non2xx + result.errors > 0) {
    throw new Error(`seeding failed: ${result.non2xx} non-2xx, ${result.errors} errors; statuses ${JSON.stringify(result.statusCodeStats)}`)
  }
}

function getRequests (prefix) {
  return [{ method: 'GET', setupRequest: (request) => ({ ...request, path: `/v1/conversations/${prefix}-${pick(POOL)}` }) }]
}

let appendCounter = 0
function appendRequests (prefix, count) {
  return [{
    method: 'POST',
    headers: json,
    setupRequest: (request) => ({
      ...request,
      path: `/v1/conversations/${prefix}-${pick(count)}/messages`,
      body: JSON.stringify({ messages: [{ id: `n${appendCounter++}`, role: 'user', text: 'one more message' }] })
    })
  }]
}

let deltaCounter = 0
/**
 * Deltas of 5 tokens to in_progress messages, one stream per conversation: request n goes to
 * stream n mod count with seq n / count + 1, so deltas of one stream are count requests apart
 * and arrive in order.
 */
function deltaRequests (prefix, count) {
  return [{
    method: 'POST',
    headers: json,
    setupRequest: (request) => {
      const n = deltaCounter++
      return { ...request, path: `/v1/conversations/${prefix}-${n % count}/messages/s/deltas`, body: JSON.stringify({ seq: Math.floor(n / count) + 1, text: ' five tokens of reply' }) }
    }
  }]
}

const FORK_MESSAGES_LABEL = '10,000'
const listPath = (userId) => `/v1/users/${userId}/conversations?limit=50&view=summary`

async function main () {
  const started = Date.now()
  const redis = await startRedis()
  const redisTls = await startRedis({ tls: true })
  const services = []
  const ceiling = {}
  const fixture = conversation('bench-user')
  try {
    const plain = await startService({ REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true', MAX_MESSAGES_PER_CONVERSATION: '100000' })
    services.push(plain)
    process.stderr.write(`seeding ${POOL} conversations of 20 messages\n`)
    await seed(plain.url, POOL, (i) => ({ ...fixture, id: `c-${i}` }))
    const peers = await startPeers({ redisUrl: redis.url, serviceUrl: plain.url, pool: POOL, seed })
    services.push(peers)

    if (scenarios.has('ceilings')) {
      const body = await (await fetch(`${plain.url}/v1/conversations/c-0`)).text()
      process.stderr.write(`fixture: ${body.length} bytes of JSON\n`)
      const bare = await startBenchServer('ceiling-server.js', { BODY: body })
      ceiling.framework = await load('1. framework ceiling (bare Fastify, same bytes)', bare.url, [{ method: 'GET', path: '/' }])
      await bare.stop()
      ceiling.redis = { title: '2. Redis ceiling (redis-benchmark GET 4 KB)', ...await redisCeiling(redis, connections, duration) }
      rows.push(ceiling.redis)
      process.stderr.write(`  ${ceiling.redis.title}: ${ceiling.redis.rps} req/s\n`)
      ceiling.roundTrip = await load('2. Redis round-trip limit (bare Fastify route, one ioredis GET, bytes as stored)', peers.roundTrip.url, getRequests('c'))
    }

    if (scenarios.has('get')) {
      ceiling.getRedis = await load('3. GET conversation, Redis', plain.url, getRequests('c'))
      ceiling.plainGet = await load('3. GET conversation, plain design (Express + ioredis)', peers.plain.url, getRequests('c'))
      const tls = await startService({ REDIS_URL: redisTls.url, REDIS_TLS_CA_FILE: redisTls.caFile })
      services.push(tls)
      await seed(tls.url, POOL, (i) => ({ ...fixture, id: `c-${i}` }))
      ceiling.getTls = await load('3. GET conversation, Redis over TLS', tls.url, getRequests('c'))
      await tls.stop()
      const memory = await startService({})
      services.push(memory)
      await seed(memory.url, POOL, (i) => ({ ...fixture, id: `c-${i}` }))
      ceiling.getMemory = await load('3. GET conversation, memory', memory.url, getRequests('c'))
      await memory.stop()
    }

    if (scenarios.has('put')) {
      await load('4. PUT whole conversation, Redis', plain.url, [{
        method: 'PUT', headers: json, body: JSON.stringify(fixture), setupRequest: (request) => ({ ...request, path: `/v1/conversations/c-${pick(POOL)}` })
      }])
    }

    if (scenarios.has('append')) {
      process.stderr.write('seeding conversations of 10 and of 1,000 messages\n')
      await seed(plain.url, POOL, (i) => ({ userId: 'append-user', id: `a10-${i}`, messages: messages(10) }))
      await seed(plain.url, 200, (i) => ({ userId: 'append-user', id: `a1k-${i}`, messages: messages(1000) }))
      ceiling.append10 = await load('5. append 1 message, 10-message conversations', plain.url, appendRequests('a10', POOL))
      ceiling.append1k = await load('5. append 1 message, 1,000-message conversations', plain.url, appendRequests('a1k', 200))
      await seed(plain.url, POOL, (i) => ({ userId: 'stream-user', id: `d10-${i}`, messages: messages(10) }))
      await seed(plain.url, POOL, () => ({ messages: [{ id: 's', role: 'assistant', status: 'in_progress' }] }), (i) => `/v1/conversations/d10-${i}/messages`)
      ceiling.delta = await load('5. delta of 5 tokens to an in_progress message, 10-message conversations', plain.url, deltaRequests('d10', POOL))
    }

    if (scenarios.has('list')) {
      process.stderr.write('seeding users with 100 and with 100,000 conversations\n')
      await seed(plain.url, 100, (i) => ({ userId: 'user-100', id: `u100-${i}`, messages: messages(3) }))
      await seed(plain.url, 100_000, (i) => ({ userId: 'user-100k', id: `u100k-${i}`, messages: messages(3) }))
      ceiling.list100 = await load('6. list 50 summaries, user with 100', plain.url, [{ method: 'GET', path: listPath('user-100') }])
      ceiling.list100k = await load('6. list 50 summaries, user with 100,000', plain.url, [{ method: 'GET', path: listPath('user-100k') }])
    }

    if (scenarios.has('mixed')) {
      const get = getRequests('c')[0]
      const append = appendRequests('c', POOL)[0]
      await load('7. mixed: 80% GET, 15% append, 5% list', plain.url, [{
        method: 'GET',
        setupRequest: (request) => {
          const roll = Math.random()
          if (roll < 0.8) return get.setupRequest({ ...request, method: 'GET' })
          if (roll < 0.95) return append.setupRequest({ ...request, method: 'POST', headers: json })
          return { ...request, method: 'GET', path: listPath('user-100') }
        }
      }])
    }

    if (scenarios.has('messages')) {
      ceiling.messagesRedis = await messageRows(plain.url, 'Redis', load)
      const memory = await startService({ MAX_MESSAGES_PER_CONVERSATION: '100000' })
      services.push(memory)
      ceiling.messagesMemory = await messageRows(memory.url, 'memory', load)
      await memory.stop()
      ceiling.tokenMicros = await tokenCountingMicros()
      process.stderr.write(`  token counting: ${ceiling.tokenMicros} µs per appended message\n`)
    }

    if (scenarios.has('plain')) {
      ceiling.readPath = await readPathRows({ serviceUrl: plain.url, plainUrl: peers.plain.url, seed, load })
    }

    if (scenarios.has('tracing')) {
      ceiling.tracing = await tracingRows({ redisUrl: redis.url, load, requests: getRequests('c') })
    }

    const peak = await peakRss(plain.pid)
    let memoryAt10k
    if (scenarios.has('memory')) {
      const memory = await startService({ MEMORY_MAX_CONVERSATIONS: '10000' })
      services.push(memory)
      await seed(memory.url, 10_000, (i) => ({ ...fixture, id: `m-${i}` }))
      memoryAt10k = await currentRss(memory.pid)
      await memory.stop()
    }

    if (scenarios.has('history')) {
      // Fresh services, so that the export's memory is the export's alone.
      const history = []
      for (const [backend, env] of [['Redis', { REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_KEY_PREFIX: 'history:' }], ['memory', { MEMORY_MAX_CONVERSATIONS: '30000' }]]) {
        const service = await startService({ ...env, MAX_MESSAGES_PER_CONVERSATION: '100000' })
        const empty = await startService({ ...env, ...(backend === 'Redis' ? { REDIS_KEY_PREFIX: 'history-import:' } : {}) })
        services.push(service, empty)
        history.push(await historyRows({ backend, service, empty, seed }))
        await service.stop()
        await empty.stop()
      }
      ceiling.history = history
    }

    if (scenarios.has('fanout')) ceiling.fanout = await fanoutRows(redis.url)

    await report({ peak, memoryAt10k, ceiling, seconds: Math.round((Date.now() - started) / 1000) })
  } finally {
    for (const service of services) await service.stop()
    await redis.stop()
    await redisTls.stop()
  }
}

function report ({ peak, memoryAt10k, ceiling, seconds }) {
  const floor = Math.min(ceiling.framework?.rps ?? Infinity, ceiling.redis?.rps ?? Infinity)
  for (const row of rows) {
    if (row.title.startsWith('3.')) row.ratio = ratio(row.rps, floor)
  }
  if (ceiling.roundTrip !== undefined) ceiling.roundTrip.ratio = ratio(ceiling.roundTrip.rps, ceiling.framework?.rps)
  if (ceiling.append1k !== undefined) ceiling.append1k.ratio = ratio(ceiling.append10.rps, ceiling.append1k.rps)
  if (ceiling.delta !== undefined) ceiling.delta.ratio = ratio(ceiling.delta.rps, ceiling.append10.rps)
  if (ceiling.list100k !== undefined) ceiling.list100k.ratio = ratio(ceiling.list100.rps, ceiling.list100k.rps)
  // The read-path rows: the service against the plain design's same row (summaries: its full list).
  const paths = ceiling.readPath
  if (paths !== undefined) {
    for (const row of [paths.listFull, paths.listSummaries]) row.ratio = ratio(row.rps, paths.plainListFull.rps)
    paths.turn.ratio = ratio(paths.turn.turns, paths.plainTurn.turns)
    paths.windowTurn.ratio = ratio(paths.windowTurn.turns, paths.plainTurn.turns)
  }

  const targets = targetsOf(ceiling, rows)

  const results = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    settings: { durationSeconds: duration, connections },
    rows,
    peakRssMiB: Math.round(peak / 2 ** 20),
    memoryBackendRssAt10kMiB: memoryAt10k === undefined ? undefined : Math.round(memoryAt10k / 2 ** 20),
    tokenCountingMicrosPerMessage: ceiling.tokenMicros,
    history: ceiling.history,
    fanout: ceiling.fanout,
    targets,
    seconds
  }
  const table = [
    '| scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | ratio |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((row) => `| ${row.title} | ${row.rps} | ${row.p50} | ${row.p99} | ${row.p999 ?? '–'} | ${row.errors} | ${row.ratio ?? ''} |`)
  ].join('\n')
  process.stdout.write(`\n${results.machine.cores} cores, Node ${results.machine.node}, ${connections} connections, ${duration} s per row\n\n${table}\n\n`)
  process.stdout.write(`Peak RSS of the Redis-backed service: ${results.peakRssMiB} MiB. Memory backend RSS at 10,000 conversations: ${results.memoryBackendRssAt10kMiB ?? '–'} MiB.\n`)
  if (paths !== undefined) {
    process.stdout.write(`Chat turns: ${paths.windowTurn.turns}/s in two requests (the first answering its window) with ${paths.windowTurn.lost} acknowledged messages lost; ` +
      `${paths.turn.turns}/s with the read as its own request, ${paths.turn.lost} lost; the plain design ${paths.plainTurn.turns}/s with ${paths.plainTurn.lost} lost.\n`)
  }
  for (const row of ceiling.history ?? []) {
    process.stdout.write(`History, ${row.backend}: export of ${row.conversations} conversations (${row.exportMiB} MiB) at ${row.exportPerSecond}/s ` +
      `(${row.exportMiBPerSecond} MiB/s), RSS ${row.rssBeforeExportMiB} MiB before and at most ${row.peakRssDuringExportMiB} MiB during it; ` +
      `import at ${row.importPerSecond}/s; fork of ${FORK_MESSAGES_LABEL} messages ${row.forkMs} ms (median, max ${row.forkMaxMs}), ${row.forkAgainstGet}× a GET of it (${row.getMs} ms).\n`)
  }
  const fanout = ceiling.fanout
  if (fanout !== undefined) {
    for (const [name, row] of [['service', fanout.service], ['resumable-stream', fanout.resumable]]) {
      process.stdout.write(`Fan-out, ${name}: ${fanout.deltas} deltas to ${fanout.followers} followers on another instance, each sent once the one before was acknowledged: ` +
        `${row.eventsPerSecond} events/s delivered, ${row.lost} lost, acknowledgement to arrival p50 ${row.p50Ms} ms and p99 ${row.p99Ms} ms, ` +
        `${row.rssPerFollowerKiB} KiB of RSS per idle follower; one every ${fanout.paceMs} ms: ${row.paced.eventsPerSecond} events/s, ${row.paced.lost} lost, ` +
        `p50 ${row.paced.p50Ms} ms and p99 ${row.paced.p99Ms} ms.\n`)
    }
  }
  process.stdout.write(`Token counting adds ${ceiling.tokenMicros ?? '–'} µs to each appended message (o200k_base, the 150-character fixture).\n\n`)
  for (const { target, value, met } of targets) process.stdout.write(`${met ? 'met   ' : 'MISSED'}  ${target}: ${value}\n`)
  return writeFile(new URL('./results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`)
}

await main()
