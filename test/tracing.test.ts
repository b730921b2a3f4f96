import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { startOtlpReceiver, type OtlpExport } from './helpers/otlp-receiver.js'
import { freePort, serviceEnv, spawnProcess, waitForExit, waitForHttp } from './helpers/process.js'
import { compiledService } from './helpers/compiled-service.js'
import { startRedis } from './helpers/redis-server.js'

// Traces as an operator sees them: the compiled service, started the way npm start and the
// image start it (the --import preload), exports to a local OTLP/HTTP collector in both
// protocols. Batches wait a minute, so what arrives was flushed by SIGTERM.

type Json = Record<string, any>

const root = process.cwd()
const serviceArgs = await compiledService(t, 'tracing')

const redis = await startRedis()
t.teardown(() => redis.close())

const SECRET_TEXT = 'the user said something private'
const SECRET_METADATA = 'metadata-value-private'
const API_KEY = 'tracing-test-key'

/** Attributes of an OTLP/JSON span as a plain object. */
function attributesOf (span: Json): Record<string, unknown> {
  return Object.fromEntries((span.attributes ?? []).map((attribute: Json) => [attribute.key, Object.values(attribute.value)[0]]))
}

async function run (protocol: 'http/json' | 'http/protobuf') {
  const receiver = await startOtlpReceiver()
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const proc = spawnProcess(process.execPath, serviceArgs, {
    cwd: root,
    env: serviceEnv({
      HOST: '127.0.0.1',
      PORT: String(port),
      API_KEYS: API_KEY,
      REDIS_URL: redis.url,
      REDIS_ALLOW_PLAINTEXT: 'true',
      REDIS_KEY_PREFIX: `trace-${protocol}:`,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_BSP_SCHEDULE_DELAY: '60000'
    })
  })
  await waitForHttp(`${base}/health/live`, { timeoutMs: 20_000, process: proc })
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }
  const id = `trace-${randomBytes(4).toString('hex')}`
  const created = await fetch(`${base}/v1/conversations`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ id, userId: 'u1', metadata: { note: SECRET_METADATA }, messages: [{ id: 'm1', role: 'user', text: SECRET_TEXT }] })
  })
  const traceId = randomBytes(16).toString('hex')
  const parentId = randomBytes(8).toString('hex')
  const traced = await fetch(`${base}/v1/conversations/${id}`, { headers: { ...headers, traceparent: `00-${traceId}-${parentId}-01` } })
  const appended = await fetch(`${base}/v1/conversations/${id}/messages`, { method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'assistant', text: SECRET_TEXT }] }) })
  const statuses = [created.status, traced.status, appended.status]
  await Promise.all([created, traced, appended].map(async (response) => await response.text()))
  const before = receiver.exports.length
  proc.child.kill('SIGTERM')
  const exited = await waitForExit(proc, 5_000)
  await receiver.close()
  return { statuses, exited, before, exports: receiver.exports, stdout: proc.stdout, stderr: proc.stderr, id, traceId, parentId }
}

function assertNothingLeaks (t: Test, exports: OtlpExport[]): void {
  const payload = Buffer.concat(exports.map((item) => item.body))
  for (const secret of [SECRET_TEXT, SECRET_METADATA, API_KEY, redis.url, 'Bearer']) {
    t.notOk(payload.includes(secret), `the exported spans never hold ${JSON.stringify(secret)}`)
  }
}

t.test('OTLP over http/json: spans per request, Redis children, logs with the trace id, flushed on SIGTERM', async (t) => {
  const result = await run('http/json')
  t.same(result.statuses, [201, 200, 201])
  t.equal(result.before, 0, 'nothing was exported before SIGTERM (batches wait a minute)')
  t.equal(result.exited?.code, 0, 'the process exits cleanly within the shutdown budget')
  t.ok(result.exports.length > 0, 'SIGTERM flushed the spans')
  t.same(new Set(result.exports.map((item) => `${item.path} ${item.contentType}`)), new Set(['/v1/traces application/json']), 'traces only, as JSON')
  assertNothingLeaks(t, result.exports)

  const resourceSpans = result.exports.flatMap((item) => JSON.parse(item.body.toString()).resourceSpans as Json[])
  const service = attributesOf(resourceSpans[0]?.resource)['service.name']
  t.equal(service, 'conversation-store', 'OTEL_SERVICE_NAME defaults to conversation-store')
  const spans = resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope: Json) => scope.spans as Json[]))
  const servers = spans.filter((span) => span.kind === 2)
  t.equal(servers.length, 3, 'one server span per request (health probes are not traced)')

  const server = servers.find((span) => span.traceId === result.traceId)
  t.ok(server, 'the request with traceparent continues the caller\'s trace')
  t.equal(server?.parentSpanId, result.parentId, 'its server span\'s parent is the caller\'s span')
  t.match(attributesOf(server ?? {}), { 'http.route': '/v1/conversations/:id' })
  t.equal(server?.name, 'GET /v1/conversations/:id', 'the server span is named by the route pattern')
  const status = attributesOf(server ?? {})['http.response.status_code'] ?? attributesOf(server ?? {})['http.status_code']
  t.equal(Number(status), 200, 'the server span has the status code')
  for (const other of servers.filter((span) => span !== server)) t.notOk(other.parentSpanId, 'a request without traceparent starts its own trace')

  const inTrace = spans.filter((span) => span.traceId === result.traceId)
  const redisSpans = inTrace.filter((span) => attributesOf(span)['db.system'] === 'redis' || attributesOf(span)['db.system.name'] === 'redis')
  t.ok(redisSpans.length > 0, 'the Redis commands of the request are child spans in its trace')
  for (const span of redisSpans) {
    const statement = attributesOf(span)['db.statement'] ?? attributesOf(span)['db.query.text']
    t.match(statement, /^[a-z]+$/, `a Redis statement is the command name only (${String(statement)})`)
  }
  const store = inTrace.map(attributesOf).find((attributes) => attributes['conversation_store.operation'] !== undefined)
  t.match(store, { 'conversation_store.operation': 'get', 'conversation_store.conversation_id': result.id }, 'a span names the store operation and the conversation')

  const lines = result.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Json)
  const traceLines = lines.filter((line) => line.trace_id === result.traceId)
  t.ok(traceLines.length >= 2, 'the request\'s log lines carry its trace id')
  for (const line of traceLines) t.match(line, { span_id: /^[0-9a-f]{16}$/ })
  t.ok(traceLines.some((line) => line.msg === 'incoming request'), 'Fastify\'s own request lines too')
  t.notOk(result.stdout.includes(SECRET_TEXT), 'nor do the logs hold message text')
})

t.test('OTLP over http/protobuf', async (t) => {
  const result = await run('http/protobuf')
  t.same(result.statuses, [201, 200, 201])
  t.equal(result.exited?.code, 0)
  t.ok(result.exports.length > 0, 'SIGTERM flushed the spans')
  t.same(new Set(result.exports.map((item) => `${item.path} ${item.contentType}`)), new Set(['/v1/traces application/x-protobuf']), 'traces only, as protobuf')
  const payload = Buffer.concat(result.exports.map((item) => item.body))
  // Protobuf carries ids as raw bytes and strings as UTF-8.
  t.ok(payload.includes(Buffer.from(result.traceId, 'hex')), 'the caller\'s trace id')
  t.ok(payload.includes(Buffer.from(result.parentId, 'hex')), 'the caller\'s span as a parent')
  t.ok(payload.includes('/v1/conversations/:id'), 'route patterns')
  t.ok(payload.includes('conversation-store'), 'the service name')
  assertNothingLeaks(t, result.exports)
})
