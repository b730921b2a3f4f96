import autocannon from 'autocannon'
import { readFile } from 'node:fs/promises'
import { conversation } from './fixtures.js'
import { startBenchServer, startRedis, startService } from './processes.js'

// npm run bench:cpu: the service's CPU time per request at a fixed rate (2,500 req/s, under
// what this machine can serve), from /proc. Unlike throughput, it hardly moves when other
// work shares the cores, so it shows what one layer costs: the framework ceiling, the
// plugin stack (/health/live), and the reads, on memory and on Redis.

const RATE = 2500
const json = { 'content-type': 'application/json' }

async function cpuMs (pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10 // utime + stime, in clock ticks of 10 ms
}

async function measure (title, url, pid, path) {
  await autocannon({ url: url + path, connections: 20, duration: 2 })
  const before = await cpuMs(pid)
  const result = await autocannon({ url: url + path, connections: 20, duration: 8, overallRate: RATE })
  const micros = ((await cpuMs(pid)) - before) * 1000 / result.requests.total
  process.stdout.write(`| ${title} | ${Math.round(result.requests.total / 8)} | ${Math.round(micros)} |\n`)
}

const redis = await startRedis()
const services = [await startService({}), await startService({ REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true' })]
try {
  process.stdout.write(`| path (${RATE} req/s offered, 20 connections) | req/s | µs CPU per request |\n|---|---:|---:|\n`)
  for (const [i, service] of services.entries()) {
    await fetch(`${service.url}/v1/conversations`, { method: 'POST', headers: json, body: JSON.stringify({ ...conversation('cpu'), id: 'c-1' }) })
    const backend = i === 0 ? 'memory' : 'Redis'
    if (i === 0) {
      const body = await (await fetch(`${service.url}/v1/conversations/c-1`)).text()
      const ceiling = await startBenchServer('ceiling-server.js', { BODY: body })
      await measure('framework ceiling (same bytes)', ceiling.url, ceiling.pid, '/')
      await ceiling.stop()
      await measure('/health/live (the plugin stack, no store)', service.url, service.pid, '/health/live')
    }
    await measure(`GET conversation, ${backend}`, service.url, service.pid, '/v1/conversations/c-1')
    await measure(`page of 20 messages (desc), ${backend}`, service.url, service.pid, '/v1/conversations/c-1/messages?order=desc&limit=20')
  }
} finally {
  for (const service of services) await service.stop()
  await redis.stop()
}
