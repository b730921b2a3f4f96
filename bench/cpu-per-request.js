import autocannon from 'autocannon'
import { readFile } from 'node:fs/promises'
import { conversation } from './fixtures.js'
import { startBenchServer, startRedis, startService } from './processes.js'

// npm run bench:cpu: the service's CPU time per request at a fixed rate (2,500 req/s, under
// what this machine can serve), from /proc, and on Redis, Redis's own. Unlike throughput,
// it hardly moves when other work shares the cores, so it shows what one layer costs: the
// framework ceiling, the plugin stack (/health/live), the reads and an append, on memory
// and on Redis.

const RATE = 2500
const json = { 'content-type': 'application/json' }

async function cpuMs (pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10 // utime + stime, in clock ticks of 10 ms
}

const CONVERSATIONS = 100
let appended = 0
// An append of one new message to one of the conversations, spread so that none fills up.
const appendRequest = {
  method: 'POST',
  headers: json,
  setupRequest: (request) => ({
    ...request,
    path: `/v1/conversations/c-${appended % CONVERSATIONS}/messages`,
    body: JSON.stringify({ messages: [{ id: `a${appended++}`, role: 'user', text: 'one more message in this chat' }] })
  })
}

async function measure (title, url, pids, request) {
  const requests = [typeof request === 'string' ? { method: 'GET', path: request } : request]
  await autocannon({ url, requests, connections: 20, duration: 2 })
  const before = await Promise.all(pids.map(cpuMs))
  const result = await autocannon({ url, requests, connections: 20, duration: 8, overallRate: RATE })
  const micros = await Promise.all(pids.map(async (pid, i) => Math.round(((await cpuMs(pid)) - before[i]) * 1000 / result.requests.total)))
  process.stdout.write(`| ${title} | ${Math.round(result.requests.total / 8)} | ${micros[0]} | ${micros[1] ?? '–'} |\n`)
}

const redis = await startRedis()
const services = [await startService({}), await startService({ REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true' })]
try {
  process.stdout.write(`| path (${RATE} req/s offered, 20 connections) | req/s | µs CPU per request, service | µs CPU per request, Redis |\n|---|---:|---:|---:|\n`)
  for (const [i, service] of services.entries()) {
    for (let c = 0; c < CONVERSATIONS; c++) {
      await fetch(`${service.url}/v1/conversations`, { method: 'POST', headers: json, body: JSON.stringify({ ...conversation('cpu'), id: `c-${c}` }) })
    }
    const backend = i === 0 ? 'memory' : 'Redis'
    const pids = i === 0 ? [service.pid] : [service.pid, redis.pid()]
    if (i === 0) {
      const body = await (await fetch(`${service.url}/v1/conversations/c-1`)).text()
      const ceiling = await startBenchServer('ceiling-server.js', { BODY: body })
      await measure('framework ceiling (same bytes)', ceiling.url, [ceiling.pid], '/')
      await ceiling.stop()
      await measure('/health/live (the plugin stack, no store)', service.url, pids, '/health/live')
    }
    await measure(`GET conversation, ${backend}`, service.url, pids, '/v1/conversations/c-1')
    await measure(`page of 20 messages (desc), ${backend}`, service.url, pids, '/v1/conversations/c-1/messages?order=desc&limit=20')
    await measure(`append of one message, ${backend}`, service.url, pids, appendRequest)
  }
} finally {
  for (const service of services) await service.stop()
  await redis.stop()
}
