import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type RequestListener } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { tmpdir } from 'node:os'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import t from 'tap'
import { freePort, serviceEnv, spawnProcess, toolEnv, waitForExit, waitForHttp } from './helpers/process.js'
import { compiledService } from './helpers/compiled-service.js'
import { makeCertificates, startRedis } from './helpers/redis-server.js'

// Azure Monitor as an operator on App Service sees it: the compiled service, started with
// the preload and APPLICATIONINSIGHTS_CONNECTION_STRING, sends its telemetry to the
// connection string's ingestion endpoint, here a local one over TLS (the exporter speaks
// HTTPS only; the service trusts the test's CA). @azure/monitor-opentelemetry
// asks for Node 22, the image's runtime, so the service runs on node@22 from the npm
// registry whatever runs the test. Anything bound elsewhere would go through HTTPS_PROXY,
// a local proxy that refuses and counts: the test asserts that it saw nothing.

type Json = Record<string, any>
interface Received { path: string, body: string }

const certificates = await makeCertificates(mkdtempSync(join(tmpdir(), 'azure-monitor-')))

async function listen (handler: (request: IncomingMessage, body: Buffer) => [number, string], tls = false) {
  const listener: RequestListener = (request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const [status, body] = handler(request, Buffer.concat(chunks))
      response.writeHead(status, { 'content-type': 'application/json' }).end(body)
    })
  }
  const server = tls
    ? createTlsServer({ cert: readFileSync(certificates.certFile), key: readFileSync(certificates.keyFile) }, listener)
    : createServer(listener)
  server.on('connect', (_request, socket) => { socket.end('HTTP/1.1 403 Forbidden\r\n\r\n') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const node22 = execFileSync('npx', ['-y', 'node@22', '-p', 'process.execPath'], { env: toolEnv(), encoding: 'utf8' }).trim()
const root = process.cwd()
const serviceArgs = await compiledService(t, 'azure')
const redis = await startRedis()
t.teardown(() => redis.close())

t.test('APPLICATIONINSIGHTS_CONNECTION_STRING: requests and Redis dependencies go to the ingestion endpoint, and nothing else leaves', async (t) => {
  const received: Received[] = []
  const ingestion = await listen((request, body) => {
    const text = (request.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString()
    received.push({ path: request.url ?? '', body: text })
    const items = text.trim().startsWith('[') ? (JSON.parse(text) as unknown[]).length : 1
    return [200, JSON.stringify({ itemsReceived: items, itemsAccepted: items, errors: [] })]
  }, true)
  let proxied = 0
  const proxy = await listen(() => { proxied++; return [403, '{}'] })
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const secret = `private words ${randomBytes(4).toString('hex')}`
  const proc = spawnProcess(node22, serviceArgs, {
    cwd: root,
    env: serviceEnv({
      HOST: '127.0.0.1',
      PORT: String(port),
      REDIS_URL: redis.url,
      REDIS_ALLOW_PLAINTEXT: 'true',
      REDIS_KEY_PREFIX: 'azure-monitor:',
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=${ingestion}/`,
      APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
      APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
      // The package samples 5 traces a second by default; the test wants every one.
      OTEL_TRACES_SAMPLER: 'always_on',
      // As on App Service, where the platform is known without asking the VM metadata service.
      WEBSITE_SITE_NAME: 'conversation-store-test',
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      NO_PROXY: '127.0.0.1',
      NODE_EXTRA_CA_CERTS: certificates.caFile
    })
  })
  await waitForHttp(`${base}/health/live`, { timeoutMs: 30_000, process: proc })
  const id = `az-${randomBytes(4).toString('hex')}`
  const headers = { 'content-type': 'application/json' }
  const created = await fetch(`${base}/v1/conversations`, { method: 'POST', headers, body: JSON.stringify({ id, userId: 'u1', messages: [{ role: 'user', text: secret }] }) })
  const read = await fetch(`${base}/v1/conversations/${id}`)
  t.same([created.status, read.status], [201, 200])
  await Promise.all([created.text(), read.text()])
  proc.child.kill('SIGTERM')
  const exited = await waitForExit(proc, 5_000)
  t.equal(exited?.code, 0, 'SIGTERM flushes and exits cleanly', { stderr: proc.stderr })

  const envelopes = received.filter((item) => item.path.startsWith('/v2.1/track'))
    .flatMap((item) => JSON.parse(item.body) as Json[])
  const requests = envelopes.filter((envelope) => envelope.data?.baseType === 'RequestData').map((envelope) => envelope.data.baseData)
  const dependencies = envelopes.filter((envelope) => envelope.data?.baseType === 'RemoteDependencyData').map((envelope) => envelope.data.baseData)
  t.ok(requests.some((request) => String(request.name).includes('/v1/conversations/:id') && String(request.responseCode) === '200'), 'the GET is a request, named by its route')
  t.ok(dependencies.some((dependency) => /redis/i.test(String(dependency.type))), 'Redis commands are dependencies')
  const all = received.map((item) => item.body).join('\n')
  t.notOk(all.includes(secret), 'no message text reaches Azure Monitor')
  t.notOk(all.includes(redis.url), 'nor the Redis URL')
  t.equal(proxied, 0, 'nothing was sent anywhere but the ingestion endpoint')
})
