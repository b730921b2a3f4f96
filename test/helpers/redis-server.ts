import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, killProcess, runCommand, serviceEnv, spawnProcess, waitForExit, type SpawnedProcess } from './process.js'

// Real, throw-away `redis-server` processes for tests, driven only through child_process
// and `redis-cli` (no ioredis), so this harness has no coupling with the app code.
// Every server binds 127.0.0.1 on its own free port, keeps its data in its own temporary
// folder and persists nothing. Callers should `t.teardown(() => server.close())`; as a
// last resort, servers still open when the test process exits are killed and their
// folders removed:
// - on a normal exit, by a process.on('exit') hook;
// - on any other death (SIGTERM from tap's timeout, SIGKILL, a crash), by a tiny detached
//   `sh` watchdog per server that waits for EOF on a pipe from this process.
// An open server does not keep the test process alive (its handles are unref'd), so a
// forgotten close() does not hang the test file until tap's timeout.

export { freePort }

export interface Certificates {
  /** The self-signed CA certificate that signed `certFile`: trust this one. */
  caFile: string
  /** The server certificate, SAN `IP:127.0.0.1, DNS:localhost`. */
  certFile: string
  keyFile: string
}

export interface StartRedisOptions {
  /** Serve TLS only (plain port disabled), with certificates made in the temporary folder. */
  tls?: boolean
  /** Sets `requirepass`; clients must AUTH with it. */
  password?: string
  /** The port to use; a free one by default. */
  port?: number
}

/** What `redisCli` needs to reach a server. */
export interface RedisEndpoint {
  port: number
  password?: string | undefined
  /** Connect with TLS, verifying against this CA file. */
  caFile?: string | undefined
}

export interface RedisServer extends RedisEndpoint {
  readonly port: number
  /** `redis://[:password@]127.0.0.1:port`, or `rediss://…` for TLS. */
  readonly url: string
  readonly password: string | undefined
  readonly tls: boolean
  /** The CA that signed the server certificate (TLS only). */
  readonly caFile: string | undefined
  /** The server's temporary folder (its `dir`, and the certificates for TLS). */
  readonly dir: string
  /** The pid of the running process; undefined once it has been killed or closed. */
  readonly pid: number | undefined
  /** The server's stdout and stderr so far, across restarts. */
  readonly output: string
  /** Runs `CLIENT PAUSE ms ALL` over a separate, short-lived redis-cli connection. */
  pause: (ms: number) => Promise<void>
  /** SIGSTOP: the kernel still accepts TCP connections, but nothing ever answers. */
  stop: () => Promise<void>
  /** SIGCONT after `stop()`; queued requests are then answered. */
  resume: () => Promise<void>
  /** SIGKILL, and waits for the process to exit. */
  kill: () => Promise<void>
  /** Starts again (killing first if needed) on the same port and config; waits for PING. */
  restart: () => Promise<void>
  /** Kills the server if running and removes its temporary folder. Idempotent. */
  close: () => Promise<void>
}

export interface RedisCliResult {
  /** The exit code, or null when ended by a signal (e.g. by the timeout). */
  code: number | null
  stdout: string
  stderr: string
  /** True when the command did not finish within `timeoutMs` and was killed. */
  timedOut: boolean
}

const readyTimeoutMs = 10_000
const outputLimit = 64 * 1024

// Last resort against leaked processes and folders: whatever is still open when the test
// process exits is killed and removed here (synchronously, as 'exit' requires).
interface Tracked {
  proc: SpawnedProcess | undefined
  watchdog: ChildProcess | undefined
  dir: string
}
const openServers = new Set<Tracked>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const server of openServers) {
      try { server.proc?.child.kill('SIGKILL') } catch {}
      try { server.watchdog?.kill('SIGKILL') } catch {}
      try { rmSync(server.dir, { recursive: true, force: true }) } catch {}
    }
    openServers.clear()
  })
}

/**
 * Starts a detached `sh` that kills `pid` and removes `dir` once its stdin reaches EOF, i.e.
 * when this process is gone, however it ended (the pipe's write end is ours alone).
 */
function startWatchdog (pid: number, dir: string): ChildProcess {
  const watchdog = spawn('sh', ['-c', 'read -r _; kill -9 "$1" 2>/dev/null; rm -rf "$2"', 'redis-watchdog', String(pid), dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    env: serviceEnv()
  })
  watchdog.on('error', () => {})
  watchdog.unref()
  ;(watchdog.stdin as Socket | null)?.unref()
  return watchdog
}

/** Lets (or stops letting) the child and its output pipes keep the event loop alive. */
function setRef (proc: SpawnedProcess, ref: boolean): void {
  for (const handle of [proc.child, proc.child.stdout as Socket | null, proc.child.stderr as Socket | null]) {
    if (ref) handle?.ref(); else handle?.unref()
  }
}

function tail (text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

function isRunning (proc: SpawnedProcess | undefined): boolean {
  return proc !== undefined && proc.result === undefined && proc.child.exitCode === null && proc.child.signalCode === null
}

/**
 * Runs `redis-cli -h 127.0.0.1 -p port [--tls --cacert caFile] ...args` and returns its
 * result without throwing. The password, if any, is passed in REDISCLI_AUTH. The command is
 * killed after `timeoutMs` (default 2 s), so it cannot hang on a stopped or paused server.
 */
export async function redisCli (endpoint: RedisEndpoint, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RedisCliResult> {
  const { timeoutMs = 2_000 } = options
  const connection = ['-h', '127.0.0.1', '-p', String(endpoint.port)]
  if (endpoint.caFile !== undefined) connection.push('--tls', '--cacert', endpoint.caFile)
  const env = serviceEnv(endpoint.password === undefined ? {} : { REDISCLI_AUTH: endpoint.password })
  const proc = spawnProcess('redis-cli', [...connection, ...args], { env })
  const result = await waitForExit(proc, timeoutMs)
  if (result === undefined) {
    await killProcess(proc)
    return { code: null, stdout: proc.stdout, stderr: proc.stderr, timedOut: true }
  }
  if (result.error !== undefined) throw result.error
  return { code: result.code, stdout: proc.stdout, stderr: proc.stderr, timedOut: false }
}

/** Writes `text` to `dir/name` and returns the path. */
async function writeIn (dir: string, name: string, text: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, text)
  return file
}

/**
 * Makes, with `openssl`, a fresh self-signed CA (RSA 2048, 1 day) in `dir` and a server key
 * and certificate signed by it, with SAN `IP:127.0.0.1, DNS:localhost`. Each call makes a new,
 * unrelated CA, so a second call in another folder gives an *untrusted* CA for negative tests.
 * Uses its own OpenSSL config files, so the system's openssl.cnf does not matter.
 */
export async function makeCertificates (dir: string): Promise<Certificates> {
  const caKey = join(dir, 'ca.key')
  const caFile = join(dir, 'ca.crt')
  const keyFile = join(dir, 'server.key')
  const csrFile = join(dir, 'server.csr')
  const certFile = join(dir, 'server.crt')
  const reqConfig = await writeIn(dir, 'req.cnf', [
    '[req]',
    'distinguished_name = dn',
    'prompt = no',
    '[dn]',
    'CN = unused',
    '[v3_ca]',
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    ''
  ].join('\n'))
  const serverExt = await writeIn(dir, 'server.ext', [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = IP:127.0.0.1, DNS:localhost',
    'authorityKeyIdentifier = keyid',
    ''
  ].join('\n'))
  const env = serviceEnv()
  // Unique subject per CA, so two CAs never look alike to a verifier.
  const caName = `/CN=redis-test-ca-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`
  await runCommand('openssl', [
    'req', '-x509', '-config', reqConfig, '-extensions', 'v3_ca', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', caKey, '-out', caFile, '-days', '1', '-subj', caName
  ], { env })
  await runCommand('openssl', [
    'req', '-new', '-config', reqConfig, '-newkey', 'rsa:2048', '-nodes',
    '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=localhost'
  ], { env })
  await runCommand('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(Date.now()),
    '-days', '1', '-sha256', '-extfile', serverExt, '-out', certFile
  ], { env })
  return { caFile, certFile, keyFile }
}

/** Polls PING until PONG; throws, with the server's last output lines, if it exits or time is up. */
async function waitForPong (endpoint: RedisEndpoint, proc: SpawnedProcess, describe: () => string): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs
  let last = 'no attempt made'
  while (Date.now() < deadline) {
    if (!isRunning(proc)) {
      setRef(proc, true)
      await proc.exited
      const { code, signal } = proc.result ?? { code: null, signal: null }
      throw new Error(`redis-server exited (code ${code}, signal ${signal}) before answering PING\n${describe()}`)
    }
    const reply = await redisCli(endpoint, ['ping'], { timeoutMs: 1_000 })
    if (reply.code === 0 && reply.stdout.trim() === 'PONG') {
      // Make sure it is our process that answered, not some other server on that port
      // (ours would then be exiting with "Address already in use").
      const info = await redisCli(endpoint, ['info', 'server'], { timeoutMs: 1_000 })
      const pid = /^process_id:(\d+)/m.exec(info.stdout)?.[1]
      if (pid !== undefined && Number(pid) === proc.child.pid) return
      last = `PONG from process ${pid ?? 'unknown'}, not from ${proc.child.pid ?? 'ours'}`
    } else {
      last = reply.timedOut ? 'timed out' : `${reply.stdout}${reply.stderr}`.trim()
    }
    await sleep(50)
  }
  throw new Error(`redis-server did not answer PING within ${readyTimeoutMs} ms (last: ${last})\n${describe()}`)
}

/** Waits (Linux only, best effort) until /proc shows the process stopped, or not stopped. */
async function waitForStopState (pid: number, stopped: boolean): Promise<void> {
  const deadline = Date.now() + 1_000
  while (Date.now() < deadline) {
    let stat: string
    try {
      stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    } catch {
      return
    }
    // The state follows the parenthesised command name: "pid (comm) S ...".
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    if ((state === 'T') === stopped) return
    await sleep(5)
  }
}

/**
 * Starts a real `redis-server` on 127.0.0.1 (TLS-only if `tls`), with no persistence and a
 * temporary `dir`, and resolves once it answers PING. When no port is given and the chosen free
 * port was taken in the meantime, it retries with another one.
 */
export async function startRedis (options: StartRedisOptions = {}): Promise<RedisServer> {
  const { tls = false, password } = options
  const dir = await mkdtemp(join(tmpdir(), 'redis-test-'))
  const entry: Tracked = { proc: undefined, watchdog: undefined, dir }
  openServers.add(entry)
  installExitHook()

  let output = ''
  let closing: Promise<void> | undefined
  let port = options.port ?? 0
  let certificates: Certificates | undefined

  const endpoint = (): RedisEndpoint => ({ port, password, caFile: certificates?.caFile })
  const describe = (): string => `redis-server output (last lines):\n${tail(output)}`

  const args = (): string[] => {
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no']
    const auth = password === undefined ? [] : ['--requirepass', password]
    if (certificates === undefined) return ['--port', String(port), ...common, ...auth]
    return [
      '--port', '0', '--tls-port', String(port),
      '--tls-cert-file', certificates.certFile, '--tls-key-file', certificates.keyFile,
      '--tls-ca-cert-file', certificates.caFile, '--tls-auth-clients', 'no',
      ...common, ...auth
    ]
  }

  const launch = async (): Promise<void> => {
    const proc = spawnProcess('redis-server', args(), { cwd: dir, env: serviceEnv() })
    entry.proc = proc
    if (proc.child.pid !== undefined) {
      entry.watchdog = startWatchdog(proc.child.pid, dir)
      setRef(proc, false)
    }
    const append = (chunk: string): void => {
      output = (output + chunk).slice(-outputLimit)
    }
    proc.child.stdout?.on('data', append)
    proc.child.stderr?.on('data', append)
    await waitForPong(endpoint(), proc, describe)
  }

  const kill = async (): Promise<void> => {
    const proc = entry.proc
    if (proc !== undefined) {
      // Keep the event loop alive until the exit is seen.
      setRef(proc, true)
      await killProcess(proc, 'SIGKILL')
    }
    entry.watchdog?.kill('SIGKILL')
    entry.watchdog = undefined
    entry.proc = undefined
  }

  const signal = async (name: 'SIGSTOP' | 'SIGCONT'): Promise<void> => {
    const proc = entry.proc
    if (proc === undefined || !isRunning(proc) || proc.child.pid === undefined) throw new Error(`redis-server on port ${port} is not running`)
    proc.child.kill(name)
    await waitForStopState(proc.child.pid, name === 'SIGSTOP')
  }

  try {
    if (tls) certificates = await makeCertificates(dir)
    for (let attempt = 1; ; attempt++) {
      if (options.port === undefined) port = await freePort()
      try {
        await launch()
        break
      } catch (error) {
        const portTaken = /address already in use/i.test(`${entry.proc?.stdout ?? ''}${entry.proc?.stderr ?? ''}`)
        await kill()
        if (options.port !== undefined || !portTaken || attempt >= 3) throw error
        output += `\n--- port ${port} was taken; retrying on another port ---\n`
      }
    }
  } catch (error) {
    await kill()
    openServers.delete(entry)
    await rm(dir, { recursive: true, force: true })
    throw error
  }

  const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`
  const url = `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`

  return {
    port,
    url,
    password,
    tls,
    caFile: certificates?.caFile,
    dir,
    get pid () { return isRunning(entry.proc) ? entry.proc?.child.pid : undefined },
    get output () { return output },
    async pause (ms: number) {
      const reply = await redisCli(endpoint(), ['client', 'pause', String(ms), 'all'])
      if (reply.code !== 0 || reply.stdout.trim() !== 'OK') {
        const why = reply.timedOut ? 'timed out' : `${reply.stdout}${reply.stderr}`.trim()
        throw new Error(`CLIENT PAUSE ${ms} ALL failed on port ${port}: ${why}`)
      }
    },
    stop: async () => await signal('SIGSTOP'),
    resume: async () => await signal('SIGCONT'),
    kill,
    async restart () {
      if (closing !== undefined) throw new Error('redis-server was closed')
      await kill()
      try {
        await launch()
      } catch (error) {
        await kill()
        throw error
      }
    },
    async close () {
      closing ??= (async () => {
        await kill()
        openServers.delete(entry)
        await rm(dir, { recursive: true, force: true })
      })()
      await closing
    }
  }
}
