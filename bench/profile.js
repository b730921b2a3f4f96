import autocannon from 'autocannon'
import { mkdir } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { conversation } from './fixtures.js'
import { startRedis, startService } from './processes.js'

// npm run bench:profile -- --path /v1/users/list-full/conversations?limit=50 [--backend memory] [--method POST]
// Seeds the service as the bench does (1,000 fixture conversations c-<i>, and user
// list-full with 100), loads one path for --duration seconds, and leaves a CPU profile of
// the service (node --cpu-prof) in --dir, to open in Chrome DevTools or speedscope.

const { values: options } = parseArgs({
  options: {
    path: { type: 'string', default: '/v1/conversations/c-1' },
    method: { type: 'string', default: 'GET' },
    backend: { type: 'string', default: 'redis' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    dir: { type: 'string', default: 'bench/profiles' }
  }
})

async function seed (url, count, body) {
  let next = 0
  await autocannon({
    url,
    connections: 32,
    amount: count,
    requests: [{ method: 'POST', path: '/v1/conversations', headers: { 'content-type': 'application/json' }, setupRequest: (request) => ({ ...request, body: JSON.stringify(body(next++)) }) }]
  })
}

await mkdir(options.dir, { recursive: true })
const redis = options.backend === 'redis' ? await startRedis() : undefined
const env = redis === undefined ? {} : { REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true' }
const service = await startService(env, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${options.dir}`] })
try {
  await seed(service.url, 1000, (i) => ({ ...conversation('bench-user'), id: `c-${i}` }))
  await seed(service.url, 100, (i) => ({ ...conversation('list-full'), id: `lf-${i}` }))
  let appended = 0
  const path = options.path.replace('c-1', 'c-[<id>]')
  const result = await autocannon({
    url: service.url,
    connections: Number(options.connections),
    duration: Number(options.duration),
    requests: [{
      method: options.method,
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({
        ...request,
        path: path.replace('[<id>]', String(Math.floor(Math.random() * 1000))),
        // POST: one new message each time (an append, when the path is …/messages).
        ...(options.method === 'POST' ? { body: JSON.stringify({ messages: [{ id: `p${appended++}`, role: 'user', text: 'one more message in this chat' }] }) } : {})
      })
    }]
  })
  process.stdout.write(`${options.path}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}\n`)
} finally {
  await service.stop()
  await redis?.stop()
}
process.stdout.write(`profile written to ${options.dir}\n`)
