import type { Cluster, Redis } from 'ioredis'
import { StoreUnavailableError } from '../../errors.js'

// Which failures mean "Redis is not serving right now" (503) rather than a bug (500).
const UNAVAILABLE_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError'])
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
const UNAVAILABLE_MESSAGES = [
  /^Command timed out/,
  /^Connection is closed/,
  /Stream isn't writeable/, // the offline queue is off or full
  /^Failed to refresh slots cache/,
  /^(CLUSTERDOWN|TRYAGAIN|LOADING|READONLY|MASTERDOWN|BUSY|NOAUTH|WRONGPASS|OOM)\b/,
  /^ERR max number of clients reached/,
  // Slots still moving after ioredis' redirections: a topology change, not a bug.
  /^(MOVED|ASK) \d+ /,
  /^Too many Cluster redirections/,
  /^Cluster is (disconnected|disconnecting)/
]
// A connection in these states is known to be down (or, in `wait`, still without
// credentials): fail fast instead of queueing.
const DOWN_STATES = new Set(['wait', 'reconnecting', 'close', 'end'])

export function isRedisUnavailable (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const { code } = error as Error & { code?: string }
  return UNAVAILABLE_NAMES.has(error.name) ||
    (code !== undefined && UNAVAILABLE_CODES.has(code)) ||
    UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(error.message))
}

/** What an operation that loops checks between its steps: past the deadline it throws. */
export interface Deadline {
  throwIfAborted: () => void
}

/**
 * Runs one store operation (possibly several commands) within `timeoutMs`, and maps the
 * failures that mean Redis is away to STORE_UNAVAILABLE. Errors of our own pass through.
 * Operations that loop check the deadline, so they stop at it too. (A plain flag and one
 * timer: an AbortController per operation showed in the profile of an append.)
 */
export async function guardRedisCall<T> (
  client: Redis | Cluster, timeoutMs: number, operation: (deadline: Deadline) => Promise<T>
): Promise<T> {
  if (DOWN_STATES.has(client.status)) throw new StoreUnavailableError()
  let timedOut: Error | undefined
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      timedOut = new Error('Command timed out')
      reject(timedOut)
    }, timeoutMs)
  })
  const deadline: Deadline = { throwIfAborted: () => { if (timedOut !== undefined) throw timedOut } }
  try {
    return await Promise.race([operation(deadline), expired])
  } catch (error) {
    if (isRedisUnavailable(error)) throw new StoreUnavailableError({ cause: error })
    throw error
  } finally {
    clearTimeout(timer)
  }
}
