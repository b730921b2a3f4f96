import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { delimiter } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

// Shared helpers for tests that run the service (or a tool) as a real child process.

export interface ProcessResult {
  /** The exit code, or null when the process was ended by a signal or never started. */
  code: number | null
  signal: NodeJS.Signals | null
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error
}

export interface SpawnedProcess {
  child: ChildProcess
  /** Everything written to stdout so far. */
  readonly stdout: string
  /** Everything written to stderr so far. */
  readonly stderr: string
  /** The exit result once the process has exited (and its output is read), else undefined. */
  readonly result: ProcessResult | undefined
  /** Settles (never rejects) when the process has exited and its output is read. */
  exited: Promise<ProcessResult>
}

export interface SpawnOptions {
  cwd?: string
  /** The complete environment of the child; nothing is inherited unless passed here. */
  env?: NodeJS.ProcessEnv
}

// Variables the tap runner sets for its own children; a process we start must not load
// tap's loaders or write coverage into tap's folders.
const runnerVariables = /^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|TAP_.*|_TAPJS_.*)$/

/** This process's environment without tap's runner variables, plus `extra`; for tools like npm. */
export function toolEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !runnerVariables.test(key)))
  return { ...env, ...extra }
}

/**
 * This process's PATH without the `node_modules/.bin` (and npm's node-gyp-bin) entries that
 * `npm run` and `npx` put in front: a command run with it finds system tools only, never
 * this repository's dev tools (so a missing `tsc` in a clean install is not hidden).
 */
export function systemPath (): string {
  return (process.env.PATH ?? '').split(delimiter).filter((entry) => entry !== '' && !/[\\/]node_modules[\\/]/.test(`${entry}/`)).join(delimiter)
}

/**
 * A small, predictable environment for the service itself: only PATH plus `extra`, so
 * settings such as REDIS_URL or API_KEYS from the shell cannot leak into a test.
 */
export function serviceEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...extra }
}

/** Starts a process with piped output, which is collected for assertions and diagnostics. */
export function spawnProcess (command: string, args: readonly string[], options: SpawnOptions = {}): SpawnedProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? {}, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let result: ProcessResult | undefined
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<ProcessResult>((resolve) => {
    child.once('error', (error) => {
      // 'close' does not follow when the process never started.
      if (child.pid === undefined) resolve(result = { code: null, signal: null, error })
    })
    child.once('close', (code, signal) => resolve(result = { code, signal }))
  })
  return {
    child,
    get stdout () { return stdout },
    get stderr () { return stderr },
    get result () { return result },
    exited
  }
}

/** Waits up to `timeoutMs` for the process to exit; resolves undefined if it is still running. */
export async function waitForExit (proc: SpawnedProcess, timeoutMs: number): Promise<ProcessResult | undefined> {
  const timer = new AbortController()
  try {
    return await Promise.race([
      proc.exited,
      sleep(timeoutMs, undefined, { signal: timer.signal })
    ])
  } finally {
    timer.abort()
  }
}

/** Kills the process (SIGKILL by default) if it is still running, and waits for it to go. */
export async function killProcess (proc: SpawnedProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<ProcessResult> {
  if (proc.result === undefined && proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal)
  return await proc.exited
}

/** Runs a command to completion; throws, with its output, unless it exits with code 0. */
export async function runCommand (command: string, args: readonly string[], options: SpawnOptions = {}): Promise<SpawnedProcess> {
  const proc = spawnProcess(command, args, options)
  const result = await proc.exited
  if (result.code !== 0) {
    const how = result.error?.message ?? (result.signal === null ? `exit code ${result.code}` : `signal ${result.signal}`)
    throw new Error(`${command} ${args.join(' ')} failed (${how})\n${proc.stdout}${proc.stderr}`)
  }
  return proc
}

/** A TCP port that was free a moment ago: listens on port 0, reads the port, closes. */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('could not read the listening port')
  return address.port
}

export interface WaitForHttpOptions {
  /** How long to keep trying, in total. */
  timeoutMs?: number
  /** The pause between attempts. */
  intervalMs?: number
  /** Gives up at once, with its output, if this process exits first. */
  process?: SpawnedProcess
}

/** Polls `url` with GET until it answers 2xx; returns that response or throws when time is up. */
export async function waitForHttp (url: string, options: WaitForHttpOptions = {}): Promise<Response> {
  const { timeoutMs = 15_000, intervalMs = 100, process: proc } = options
  const deadline = Date.now() + timeoutMs
  let last = 'no attempt made'
  while (Date.now() < deadline) {
    if (proc?.result !== undefined) {
      const { code, signal } = proc.result
      throw new Error(`process exited (code ${code}, signal ${signal}) before ${url} answered\n${proc.stdout}${proc.stderr}`)
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.min(1_000, deadline - Date.now()))) })
      if (response.ok) return response
      last = `HTTP ${response.status}`
      await response.body?.cancel()
    } catch (error) {
      last = error instanceof Error ? error.message : String(error)
    }
    await sleep(intervalMs)
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (last: ${last})${proc === undefined ? '' : `\n${proc.stdout}${proc.stderr}`}`)
}
