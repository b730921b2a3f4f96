import { spawn, execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

// Starting and stopping the processes a benchmark run needs, all on 127.0.0.1.

const run = promisify(execFile)
const started = new Set()

process.on('exit', () => { for (const child of started) child.kill('SIGKILL') })

export async function freePort () {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Spawns a process whose output is kept (the last few KB, so long runs stay bounded) for
 * error messages. `onLine`, when given, sees every complete line of stdout.
 */
function startProcess (command, args, { onLine, ...options } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let output = ''
  let partial = ''
  const keep = (chunk) => { output = (output + chunk).slice(-8000) }
  child.stdout.on('data', (chunk) => {
    keep(chunk)
    if (onLine === undefined) return
    const lines = (partial + chunk).split('\n')
    partial = lines.pop().slice(-8000)
    for (const line of lines) onLine(line)
  })
  child.stderr.on('data', keep)
  started.add(child)
  child.once('exit', () => started.delete(child))
  return { child, output: () => output.slice(-2000) }
}

const running = ({ child }) => child.exitCode === null && child.signalCode === null

export async function stopProcess ({ child }, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))])
  await exited
}

async function waitFor (check, what, proc) {
  for (let i = 0; i < 200; i++) {
    if (await check().catch(() => false)) return
    if (proc !== undefined && proc.child.exitCode !== null) break
    await sleep(50)
  }
  throw new Error(`${what} did not start${proc === undefined ? '' : `:\n${proc.output()}`}`)
}

/** Peak resident memory of a process, in bytes (VmHWM). */
export async function peakRss (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) * 1024
}

export async function currentRss (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024
}

/** A TLS CA and a server certificate for 127.0.0.1, made with openssl. */
async function certificates (dir) {
  const file = (name) => join(dir, name)
  await writeFile(file('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=bench-ca', '-keyout', file('ca.key'), '-out', file('ca.crt')])
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', file('server.key'), '-out', file('server.csr')])
  await run('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.cnf'), '-out', file('server.crt')])
  return { ca: file('ca.crt'), cert: file('server.crt'), key: file('server.key') }
}

async function redisMajorVersion () {
  const { stdout } = await run('redis-server', ['--version'])
  return Number(/v=(\d+)/.exec(stdout)?.[1] ?? 7)
}

/**
 * A redis-server, plain or TLS, without persistence unless `aof` is set (append-only file
 * with `appendfsync always`: an acknowledged write survives kill -9). `debug` enables the
 * DEBUG command (Redis 7 refuses it otherwise). Besides `stop`, the handle can kill the
 * server (`kill`), shut it down (`shutdown`) and start it again on the same port and
 * directory (`start`), and run a redis-cli command (`command`).
 */
export async function startRedis ({ tls = false, aof = false, debug = false } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-redis-'))
  const port = await freePort()
  const persistence = aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
  // Before Redis 7, DEBUG is always allowed and the option does not exist.
  const enableDebug = debug && await redisMajorVersion() >= 7 ? ['--enable-debug-command', 'yes'] : []
  const common = ['--bind', '127.0.0.1', '--save', '', ...persistence, ...enableDebug, '--dir', dir]
  let args = ['--port', String(port), ...common]
  let caFile
  if (tls) {
    const files = await certificates(dir)
    caFile = files.ca
    args = ['--port', '0', '--tls-port', String(port), '--tls-cert-file', files.cert, '--tls-key-file', files.key,
      '--tls-ca-cert-file', files.ca, '--tls-auth-clients', 'no', ...common]
  }
  const cli = ['-h', '127.0.0.1', '-p', String(port), ...(tls ? ['--tls', '--cacert', caFile] : [])]
  const command = async (words, timeout = 5000) => (await run('redis-cli', [...cli, ...words], { timeout })).stdout.trim()
  let proc
  const start = async () => {
    if (proc !== undefined && running(proc)) return
    proc = startProcess('redis-server', args)
    await waitFor(async () => (await command(['ping'], 1000)) === 'PONG', 'redis-server', proc)
  }
  await start()
  return {
    port,
    caFile,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    cli,
    dir,
    command,
    start,
    pid: () => proc.child.pid,
    running: () => running(proc),
    kill: (signal = 'SIGKILL') => stopProcess(proc, signal),
    shutdown: async () => {
      await command(['shutdown'], 5000).catch(() => {})
      await stopProcess(proc)
    },
    stop: async () => { await stopProcess(proc); await rm(dir, { recursive: true, force: true }) }
  }
}

async function answers (url) {
  const response = await fetch(url)
  return response.ok
}

/**
 * The compiled service, as production runs it. `onLine` sees each line it logs; `running`
 * says whether it still runs. `nodeArgs` go to node (e.g. `--cpu-prof`).
 */
export async function startService (env, { onLine, nodeArgs = [] } = {}) {
  const port = await freePort()
  const proc = startProcess(process.execPath, [...nodeArgs, 'dist/src/server.js'], {
    onLine,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      AUTH_DISABLED: 'true',
      HOST: '127.0.0.1',
      PORT: String(port),
      ...env
    }
  })
  const url = `http://127.0.0.1:${port}`
  await waitFor(() => answers(`${url}/health`), 'the service', proc)
  return { url, pid: proc.child.pid, running: () => running(proc), output: proc.output, stop: () => stopProcess(proc) }
}

/**
 * One of the bench's own servers (`bench/<file>`): the framework ceiling, the Redis
 * round-trip route or the plain design, given its settings in the environment.
 */
export async function startBenchServer (file, env = {}) {
  const port = await freePort()
  const proc = startProcess(process.execPath, [`bench/${file}`], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', PORT: String(port), ...env }
  })
  const url = `http://127.0.0.1:${port}`
  await waitFor(async () => (await fetch(url)).status < 500, file, proc)
  return { url, pid: proc.child.pid, stop: () => stopProcess(proc) }
}

/** redis-benchmark's GET of a 4 KB value: the Redis ceiling, in requests per second. */
export async function redisCeiling (redis, connections, seconds) {
  const requests = String(Math.max(20_000, seconds * 40_000))
  const { stdout } = await run('redis-benchmark', [...redis.cli, '-t', 'get', '-d', '4096', '-c', String(connections), '-n', requests, '--csv'])
  const line = stdout.split('\n').find((row) => row.startsWith('"GET"'))
  const cells = line.split(',').map((cell) => Number(cell.replaceAll('"', '')))
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  return { rps: cells[1], p50: cells[4], p99: cells[6], p999: null, errors: 0 }
}
