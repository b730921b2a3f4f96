import { randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { parseArgs } from 'node:util'
import { currentRss, peakRss, startRedis, startService } from './processes.js'
import { FAULT_KINDS, injectFaults, waitHealthy } from './soak-faults.js'
import { SoakLoad, Stats } from './soak-load.js'
import { SoakFeeds } from './soak-feeds.js'

// npm run soak [-- --minutes 1 --backend redis|memory --workers 16 --rate 200 --persistence aof|none]
// A mixed load against the compiled service while Redis is restarted, killed, paused and
// put to sleep; at the end every acknowledged write is read back. Meanwhile producers stream
// messages and followers read the event feeds, resuming through every fault: none may miss,
// repeat or reorder an acknowledged event. See bench/README.md.

const { values: options } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'redis' },
    workers: { type: 'string', default: '16' },
    rate: { type: 'string', default: '200' },
    // none: Redis without AOF, so kill -9 loses writes; shows that the soak detects lost writes
    persistence: { type: 'string', default: 'aof' }
  }
})
const minutes = Number(options.minutes)
const workers = Number(options.workers)
const rate = Number(options.rate)
if (!(minutes > 0 && minutes <= 24 * 60) || !['redis', 'memory'].includes(options.backend) || !(workers >= 1) || !(rate > 0) ||
  !['aof', 'none'].includes(options.persistence)) {
  process.stderr.write('usage: node bench/soak.js [--minutes N (> 0)] [--backend redis|memory] [--workers 16] [--rate 200] [--persistence aof|none]\n')
  process.exit(2)
}
const redisBackend = options.backend === 'redis'

const REDIS_TIMEOUT_MS = 1000
const BOUND_MS = 5 * REDIS_TIMEOUT_MS // no request may take longer
const ABORT_MS = 2 * BOUND_MS // a request still unanswered then is abandoned (and counted as slow)
const RSS_LIMIT_PCT = 10
const RSS_CHECK_MINUTES = 10
const FEED_CONVERSATIONS = 4
const FOLLOWERS_EACH = 10
const durationMs = Math.round(minutes * 60_000)
const warmupMs = Math.min(Math.max(5000, durationMs * 0.1), durationMs / 2)
const tailMs = Math.min(Math.max(5000, durationMs * 0.1), durationMs / 4) // no fault starts this close to the end
const MiB = (bytes) => bytes === undefined ? undefined : Math.round(bytes / 2 ** 20 * 10) / 10
const log = (line) => process.stdout.write(`${line}\n`)

const controller = new AbortController()
setMaxListeners(1000, controller.signal) // every worker's sleep and request listens to it
let interrupted = false
function onSignal (signal) {
  if (interrupted) process.exit(130)
  interrupted = true
  process.stderr.write(`\n${signal}: stopping the soak and everything it started\n`)
  controller.abort()
  setTimeout(() => process.exit(130), 20_000).unref()
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

async function main () {
  const serviceLog = { warn: 0, error: 0, fatal: 0, errorLines: [] }
  const onLine = (line) => {
    let level
    try { level = JSON.parse(line).level } catch { return }
    if (level >= 60) serviceLog.fatal++
    else if (level >= 50) serviceLog.error++
    else if (level >= 40) serviceLog.warn++
    if (level >= 50 && serviceLog.errorLines.length < 10) serviceLog.errorLines.push(line.slice(0, 500))
  }
  let redis, service
  const timers = []
  const faultController = new AbortController()
  const stopFaults = () => faultController.abort()
  controller.signal.addEventListener('abort', stopFaults)
  let faultsDone = Promise.resolve([])
  try {
    if (redisBackend) {
      redis = await startRedis({ aof: options.persistence === 'aof', debug: true })
      if (redis.port === 6379) throw new Error('refusing to use port 6379')
    }
    const apiKey = randomBytes(24).toString('base64url')
    service = await startService({
      LOG_LEVEL: 'warn',
      AUTH_DISABLED: 'false',
      API_KEYS: apiKey,
      ...(redisBackend ? { REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_TIMEOUT: String(REDIS_TIMEOUT_MS) } : {})
    }, { onLine })
    log(`soak: ${options.backend} backend, ${minutes} min, ${workers} workers, at most ${rate} steps/s; service pid ${service.pid}` +
      (redisBackend ? `, redis-server on port ${redis.port} (${options.persistence === 'aof' ? 'AOF, appendfsync always' : 'NO persistence'})` : ''))

    const runStart = Date.now()
    const stats = new Stats(BOUND_MS, runStart)
    const load = new SoakLoad({ url: service.url, apiKey, stats, signal: controller.signal, abortMs: ABORT_MS })
    const feeds = new SoakFeeds({ url: service.url, apiKey, signal: controller.signal })
    const beforeFollowers = await currentRss(service.pid)
    await feeds.start({ conversations: FEED_CONVERSATIONS, followersEach: FOLLOWERS_EACH })
    const rssPerFollowerKiB = Math.round((await currentRss(service.pid) - beforeFollowers) / (FEED_CONVERSATIONS * FOLLOWERS_EACH) / 1024 * 10) / 10
    const rss = {}
    let serviceDied = false
    const sample = (name) => currentRss(service.pid).then((bytes) => { rss[name] = bytes }, () => {})
    timers.push(setTimeout(() => sample('warmup'), warmupMs), setTimeout(() => sample('middle'), durationMs / 2))
    timers.push(setInterval(() => {
      if (!service.running() && !serviceDied) {
        serviceDied = true
        log(`  the service exited:\n${service.output()}`)
        controller.abort()
      }
    }, 500))
    if (redisBackend) {
      const windowMs = durationMs - tailMs - warmupMs
      const everyMs = Math.min(30_000, Math.max(8000, windowMs / FAULT_KINDS.length))
      faultsDone = injectFaults({ redis, runStart, fromMs: warmupMs + 1000, untilMs: durationMs - tailMs, everyMs, signal: faultController.signal, log })
    }

    const streaming = feeds.produce({ endAt: runStart + durationMs, deltaEveryMs: 50 })
    await load.run({ endAt: runStart + durationMs, workers, rate })
    await streaming
    const loadMs = Date.now() - runStart
    await sample('end')
    const peak = await peakRss(service.pid).catch(() => undefined)
    stopFaults()
    const faults = await faultsDone
    if (controller.signal.aborted && !serviceDied) throw new Error('interrupted')
    log(`  load stopped after ${(loadMs / 1000).toFixed(1)} s; waiting for ${redisBackend ? 'Redis and ' : ''}the service to be healthy`)
    const healthy = !serviceDied && await waitHealthy({ redis, serviceUrl: service.url })
    const unresolved = healthy ? await load.settle() : load.pendingCount()
    const unverified = healthy ? await load.verify() : ['(not verified: not healthy)']
    const live = { ...await feeds.finish(healthy ? 20_000 : 0), rssPerFollowerKiB }
    if (interrupted) throw new Error('interrupted')

    const summary = report({ stats, load, faults, rss, peak, loadMs, healthy, unresolved, unverified, serviceDied, serviceLog, live })
    process.exitCode = summary.passed ? 0 : 1
  } catch (error) {
    if (interrupted) {
      process.stderr.write('soak interrupted\n')
      process.exitCode = 130
    } else {
      process.stderr.write(`soak failed: ${error.stack}\n`)
      process.exitCode = 1
    }
  } finally {
    for (const timer of timers) clearTimeout(timer)
    stopFaults()
    await faultsDone.catch(() => {})
    if (service !== undefined) await service.stop()
    if (redis !== undefined) await redis.stop()
  }
}

function report ({ stats, load, faults, rss, peak, loadMs, healthy, unresolved, unverified, serviceDied, serviceLog, live }) {
  const latency = stats.latency()
  const faultsByKind = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, faults.filter((f) => f.kind === kind).length]).filter(([, n]) => n > 0 || redisBackend))
  const failedFaults = faults.filter((f) => f.error !== undefined)
  const growthPct = rss.warmup > 0 && rss.end > 0 ? Math.round((rss.end - rss.warmup) / rss.warmup * 1000) / 10 : undefined
  const conversations = load.conversations
  const byState = {}
  for (const c of conversations) byState[c.state] = (byState[c.state] ?? 0) + 1
  const lost = [...load.lost.values()]
  const status500 = stats.statuses['500'] ?? 0

  const failures = []
  if (lost.length > 0) failures.push(`${lost.length} acknowledged writes lost`)
  if (stats.serverErrors.count > 0) failures.push(`${stats.serverErrors.count} answers of 5xx other than 503 (${status500} of them 500)`)
  if (stats.slow.count > 0) failures.push(`${stats.slow.count} requests took longer than ${BOUND_MS} ms (longest ${latency.max} ms)`)
  if (stats.unexpected.count > 0) failures.push(`${stats.unexpected.count} requests got no answer or an unexpected 4xx`)
  if (load.anomalies.count > 0) failures.push(`${load.anomalies.count} other contract violations`)
  if (serviceDied) failures.push('the service exited during the run')
  if (!healthy) failures.push('Redis or the service did not become healthy after the load')
  if (unresolved > 0) failures.push(`${unresolved} writes of unknown outcome could not be resolved`)
  if (unverified.length > 0) failures.push(`${unverified.length} conversations could not be read back`)
  if (failedFaults.length > 0) failures.push(`${failedFaults.length} faults could not be injected`)
  if (live.lost + live.duplicated + live.outOfOrder > 0) failures.push(`followers: ${live.lost} events lost, ${live.duplicated} duplicated, ${live.outOfOrder} out of order`)
  if (minutes >= RSS_CHECK_MINUTES && !(growthPct < RSS_LIMIT_PCT)) failures.push(`service RSS grew ${growthPct} % from warm-up to end (limit ${RSS_LIMIT_PCT} %)`)

  const line = (entries) => Object.entries(entries).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`).join(', ')
  log('')
  log(`requests: ${stats.requests} (${line(stats.byPhase)}), ${Math.round(stats.byPhase.load / loadMs * 1000)} req/s during the load`)
  log(`answers by status: ${line(stats.statuses)}`)
  for (const [op, statuses] of Object.entries(stats.byOp)) log(`  ${op.padEnd(13)} ${line(statuses)}`)
  log(`latency: p50 ${latency.p50} ms, p99 ${latency.p99} ms, p99.9 ${latency.p999} ms; longest ${latency.max} ms ` +
    `(${stats.maxRequest?.method} ${stats.maxRequest?.path} → ${stats.maxRequest?.status} at ${stats.maxRequest?.atS} s); bound ${BOUND_MS} ms`)
  log(`faults injected: ${redisBackend ? line(faultsByKind) : 'none (memory backend)'}${failedFaults.length > 0 ? ` (${failedFaults.length} failed)` : ''}`)
  const recovery = faults.map((fault, i) => {
    const until = faults[i + 1]?.atMs ?? loadMs
    const during = stats.unavailableAtMs.filter((at) => at >= fault.atMs && at < until)
    const recoveredMs = during.length === 0 ? 0 : Math.max(0, Math.max(...during) - fault.atMs - fault.tookMs)
    log(`  ${fault.kind.padEnd(8)} at ${(fault.atMs / 1000).toFixed(1)} s for ${fault.tookMs} ms: ${during.length} answers 503 or none, the last ${recoveredMs} ms after the fault ended`)
    return { ...fault, unavailable: during.length, recoveredMs }
  })
  const outside = stats.unavailableAtMs.length - recovery.reduce((sum, fault) => sum + fault.unavailable, 0)
  if (redisBackend && outside > 0) log(`  ${outside} answers 503 or none before the first fault`)
  log(`model: ${conversations.length} conversations (${line(byState)}), ${load.counts.ackedMessages} messages and ${load.counts.ackedPatches} PATCHes acknowledged, ` +
    `${load.counts.resolvedUnknown} unknown outcomes resolved by retry, ${load.counts.patch412} PATCH 412 on a first try; ${unresolved} unresolved at the end`)
  log(`lost acknowledged writes: ${lost.length}`)
  for (const entry of lost.slice(0, 10)) log(`  ${entry.kind} ${entry.id} ${entry.item}: ${entry.detail} [${entry.phase}]`)
  log(`live: ${live.followers} followers of ${FEED_CONVERSATIONS} streamed conversations; ${live.acknowledged} events acknowledged, ${live.delivered} delivered, ` +
    `${live.reconnects} reconnects, ${live.writeRetries} write retries; events lost ${live.lost}, duplicated ${live.duplicated}, out of order ${live.outOfOrder}; ` +
    `${live.rssPerFollowerKiB} KiB of RSS per open follower`)
  const { userFeed } = live
  log(`user's feed (reported, not judged): ${userFeed.events} events, duplicated ${userFeed.duplicated}, out of order ${userFeed.outOfOrder}; ` +
    `its last event names the current version of ${userFeed.current} of ${userFeed.conversations} conversations`)
  log(`other contract violations: ${load.anomalies.count}`)
  for (const entry of load.anomalies.details.slice(0, 10)) log(`  ${JSON.stringify(entry)}`)
  for (const [name, bucket] of [['5xx other than 503', stats.serverErrors], ['slow', stats.slow], ['unexpected', stats.unexpected]]) {
    if (bucket.count === 0) continue
    log(`${name}: ${bucket.count}`)
    for (const detail of bucket.details.slice(0, 10)) log(`  ${JSON.stringify(detail)}`)
  }
  log(`service RSS: warm-up ${MiB(rss.warmup)} MiB, middle ${MiB(rss.middle)} MiB, end ${MiB(rss.end)} MiB (growth ${growthPct} %` +
    `${minutes >= RSS_CHECK_MINUTES ? `, limit ${RSS_LIMIT_PCT} %` : `, checked only for runs of ${RSS_CHECK_MINUTES} minutes or more`}); peak ${MiB(peak)} MiB`)
  log(`service log: ${serviceLog.warn} warn, ${serviceLog.error} error, ${serviceLog.fatal} fatal lines`)
  for (const entry of serviceLog.errorLines.slice(0, 5)) log(`  ${entry}`)
  log(failures.length === 0 ? 'PASS' : `FAIL: ${failures.join('; ')}`)

  const summary = {
    soak: {
      backend: options.backend,
      minutes,
      workers,
      rate,
      passed: failures.length === 0,
      failures,
      requests: stats.requests,
      requestsByPhase: stats.byPhase,
      statuses: stats.statuses,
      lostAcknowledgedWrites: lost.length,
      lost: lost.slice(0, 10),
      anomalies: load.anomalies.count,
      status500,
      latencyMs: latency,
      longestRequest: stats.maxRequest,
      boundMs: BOUND_MS,
      slowRequests: stats.slow.count,
      faults: faultsByKind,
      faultLog: recovery,
      rssMiB: { warmup: MiB(rss.warmup), middle: MiB(rss.middle), end: MiB(rss.end), peak: MiB(peak), growthPct },
      model: { conversations: conversations.length, ...byState, ackedMessages: load.counts.ackedMessages, ackedPatches: load.counts.ackedPatches, unresolved },
      serviceLog: { warn: serviceLog.warn, error: serviceLog.error, fatal: serviceLog.fatal },
      live
    }
  }
  log(JSON.stringify(summary))
  return summary.soak
}

await main()
