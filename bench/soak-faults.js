import { setTimeout as sleep } from 'node:timers/promises'

// Faults injected against the soak's own redis-server, one at a time, spaced out over the
// run and cycling through the kinds below. Each one leaves Redis running when it returns.

export const FAULT_KINDS = ['restart', 'kill', 'pause', 'sleep']

const DOWN_MS = 1000 // how long Redis stays stopped after a restart's shutdown or a kill -9
const PAUSE_MS = 2500 // CLIENT PAUSE and DEBUG SLEEP: longer than REDIS_TIMEOUT, so requests get 503

/** Starts Redis again on the same port and directory; a few tries, in case the port is briefly busy. */
export async function restartRedis (redis) {
  let failure
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await redis.start()
      return
    } catch (error) {
      failure = error
      await sleep(500)
    }
  }
  throw failure
}

async function inject (redis, kind) {
  switch (kind) {
    case 'restart':
      await redis.shutdown()
      await sleep(DOWN_MS)
      await restartRedis(redis)
      break
    case 'kill':
      await redis.kill('SIGKILL')
      await sleep(DOWN_MS)
      await restartRedis(redis)
      break
    case 'pause':
      await redis.command(['client', 'pause', String(PAUSE_MS), 'all'])
      await sleep(PAUSE_MS)
      break
    case 'sleep':
      // Blocks the whole server; redis-cli answers once it wakes up.
      await redis.command(['debug', 'sleep', String(PAUSE_MS / 1000)], PAUSE_MS + 5000)
      break
  }
}

/**
 * Injects faults from `fromMs` to `untilMs` (times since the start of the run), every
 * `everyMs`, until `signal` aborts. Returns a promise of the list of faults, each
 * `{ kind, atMs, tookMs, error? }`. `log` gets one line per fault.
 */
export async function injectFaults ({ redis, runStart, fromMs, untilMs, everyMs, signal, log }) {
  const faults = []
  for (let next = fromMs, i = 0; next < untilMs && !signal.aborted; next += everyMs, i++) {
    const wait = runStart + next - Date.now()
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {})
    if (signal.aborted) break
    const kind = FAULT_KINDS[i % FAULT_KINDS.length]
    const started = Date.now()
    const fault = { kind, atMs: started - runStart }
    try {
      await inject(redis, kind)
    } catch (error) {
      fault.error = error.message.split('\n')[0]
    }
    fault.tookMs = Date.now() - started
    faults.push(fault)
    log(`  [${(fault.atMs / 1000).toFixed(1)} s] fault ${kind}: ${fault.tookMs} ms${fault.error === undefined ? '' : `, FAILED: ${fault.error}`}`)
    // Whatever happened, leave Redis running for the rest of the run.
    if (!redis.running()) await restartRedis(redis).catch(() => {})
  }
  return faults
}

/** Waits (bounded) until Redis answers PING and the service's /health says ok. */
export async function waitHealthy ({ redis, serviceUrl, timeoutMs = 30_000 }) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (redis !== undefined && !redis.running()) await restartRedis(redis).catch(() => {})
    const redisOk = redis === undefined || await redis.command(['ping'], 1000).then((out) => out === 'PONG', () => false)
    const serviceOk = redisOk && await fetch(`${serviceUrl}/health`, { signal: AbortSignal.timeout(2000) })
      .then((response) => response.ok, () => false)
    if (serviceOk) return true
    await sleep(200)
  }
  return false
}
