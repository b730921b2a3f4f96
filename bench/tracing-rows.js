import { createServer } from 'node:http'
import { startService } from './processes.js'

// Row 11: what tracing costs a GET on Redis. The same service three ways, on the same
// data: started as before tracing existed, started with the tracing preload but no
// destination (what every deployment without tracing runs), and tracing every request to a
// local OTLP collector. The first two alternate, three times each, so that drift on this shared
// machine falls on both alike.

const ROUNDS = 3
const PRELOAD = ['--import', './dist/src/telemetry/preload.js']

/** A collector that takes every export and answers 200. */
async function startCollector () {
  const server = createServer((request, response) => { request.resume().on('end', () => response.end('{}')) })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((resolve) => server.close(resolve)) }
}

export async function tracingRows ({ redisUrl, load, requests }) {
  const env = { REDIS_URL: redisUrl, REDIS_ALLOW_PLAINTEXT: 'true' }
  const collector = await startCollector()
  const before = await startService(env)
  const off = await startService(env, { nodeArgs: PRELOAD })
  const on = await startService({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER: 'always_on' }, { nodeArgs: PRELOAD })
  try {
    const runs = { before: [], off: [] }
    for (let round = 1; round <= ROUNDS; round++) {
      runs.before.push(await load(`11. GET conversation, Redis, started without the tracing preload (run ${round})`, before.url, requests))
      runs.off.push(await load(`11. GET conversation, Redis, tracing preload, tracing off (run ${round})`, off.url, requests))
    }
    const traced = await load('11. GET conversation, Redis, tracing on (OTLP/HTTP, every request sampled)', on.url, requests)
    const sum = (list) => list.reduce((total, row) => total + row.rps, 0)
    return { beforeRps: sum(runs.before) / ROUNDS, offRps: sum(runs.off) / ROUNDS, onRps: traced.rps }
  } finally {
    await Promise.all([before.stop(), off.stop(), on.stop()])
    await collector.stop()
  }
}
