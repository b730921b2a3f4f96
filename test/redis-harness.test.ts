import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import t from 'tap'
import { runCommand, serviceEnv, spawnProcess } from './helpers/process.js'
import { freePort, makeCertificates, startRedis } from './helpers/redis-server.js'

// Checks the real-redis-server test harness itself, with plain `redis-cli` run under
// `timeout`, independent of the harness's own helpers.

interface CliResult { code: number | null, output: string, ms: number }

/** `timeout <seconds> redis-cli -h 127.0.0.1 ...args`; exit code 124 means it timed out. */
async function cli (args: readonly string[], seconds = 2): Promise<CliResult> {
  const started = Date.now()
  const proc = spawnProcess('timeout', [String(seconds), 'redis-cli', '-h', '127.0.0.1', ...args], { env: serviceEnv() })
  const result = await proc.exited
  return { code: result.code, output: `${proc.stdout}${proc.stderr}`.trim(), ms: Date.now() - started }
}

t.test('plain server: ping, stop/resume, kill/restart, close', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  const port = String(server.port)

  t.equal(server.url, `redis://127.0.0.1:${server.port}`)
  t.equal(server.caFile, undefined)
  t.ok(existsSync(server.dir), 'has a temporary folder')
  t.same(await cli(['-p', port, 'ping']).then((r) => r.output), 'PONG')

  await server.stop()
  const stalled = await cli(['-p', port, 'ping'], 1)
  t.equal(stalled.code, 124, 'a stopped server accepts the connection but never answers')
  t.not(stalled.output, 'PONG')

  await server.resume()
  t.equal((await cli(['-p', port, 'ping'])).output, 'PONG', 'answers again after resume')

  const firstPid = server.pid
  await server.kill()
  t.equal(server.pid, undefined)
  const refused = await cli(['-p', port, 'ping'])
  t.equal(refused.code, 1, 'nothing listens after kill')
  t.match(refused.output, /Connection refused/)

  await server.restart()
  t.equal((await cli(['-p', port, 'ping'])).output, 'PONG', 'answers after restart on the same port')
  t.not(server.pid, firstPid, 'a new process')

  await server.close()
  await server.close()
  t.notOk(existsSync(server.dir), 'close removed the folder')
  t.equal((await cli(['-p', port, 'ping'])).code, 1, 'close killed the server')
})

t.test('pause: CLIENT PAUSE ALL delays replies, then answers', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.close())
  await server.pause(400)
  const reply = await cli(['-p', String(server.port), 'ping'])
  t.equal(reply.output, 'PONG')
  t.ok(reply.ms >= 300, `the reply waited for the pause (${reply.ms} ms)`)
})

t.test('TLS server: trusted CA works, another CA fails', async (t) => {
  const server = await startRedis({ tls: true })
  const otherDir = await mkdtemp(join(tmpdir(), 'redis-test-other-ca-'))
  t.teardown(async () => {
    await server.close()
    await rm(otherDir, { recursive: true, force: true })
  })
  const port = String(server.port)
  const caFile = server.caFile
  if (caFile === undefined) throw new Error('a TLS server must have a CA file')

  t.equal(server.url, `rediss://127.0.0.1:${server.port}`)
  t.equal((await cli(['--tls', '--cacert', caFile, '-p', port, 'ping'])).output, 'PONG')

  const other = await makeCertificates(otherDir)
  t.not(other.caFile, caFile)
  const untrusted = await cli(['--tls', '--cacert', other.caFile, '-p', port, 'ping'])
  t.not(untrusted.output, 'PONG')
  t.match(untrusted.output, /certificate verify failed/i)

  const plain = await cli(['-p', port, 'ping'])
  t.not(plain.output, 'PONG', 'no plain-text service on the TLS port')

  const san = await runCommand('openssl', ['x509', '-in', other.certFile, '-noout', '-ext', 'subjectAltName'], { env: serviceEnv() })
  t.match(san.stdout, /IP Address:127\.0\.0\.1/)
  t.match(san.stdout, /DNS:localhost/)

  // Node's own verification (chain and host name) accepts both 127.0.0.1 and localhost.
  const ca = await readFile(caFile)
  for (const servername of [undefined, 'localhost']) {
    const authorized = await new Promise<boolean>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.port, ca, ...(servername === undefined ? {} : { servername }) }, () => {
        resolve(socket.authorized)
        socket.end()
      })
      socket.once('error', reject)
    })
    t.equal(authorized, true, `node verifies the certificate as ${servername ?? '127.0.0.1'}`)
  }
})

t.test('password server: NOAUTH without, PONG with', async (t) => {
  const server = await startRedis({ password: 's3cret/pw' })
  t.teardown(() => server.close())
  const port = String(server.port)

  t.equal(server.url, `redis://:${encodeURIComponent('s3cret/pw')}@127.0.0.1:${server.port}`)
  t.match((await cli(['-p', port, 'ping'])).output, /NOAUTH/)
  t.equal((await cli(['-p', port, '-a', 's3cret/pw', '--no-auth-warning', 'ping'])).output, 'PONG')
})

t.test('a start-up failure reports the server output', async (t) => {
  const blocker = createServer((socket) => socket.destroy())
  const port = await freePort()
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  await t.rejects(startRedis({ port }), /exited[\s\S]*Address already in use/)
})
