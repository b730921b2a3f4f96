import type { FastifyBaseLogger } from 'fastify'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { rootCertificates } from 'node:tls'
import type { RedisConfig } from '../../config.js'
import type { StoreHealth } from '../types.js'

// How the service connects to Redis: client options, cluster options, start-up checks,
// credential updates and the health round trip. The redis plugin wires these into Fastify.

export type RedisClient = Redis | Cluster

// Failures that retrying cannot fix: stop start-up instead of retrying forever.
const FATAL_CODES = new Set([
  'ENOTFOUND', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'
])
const AUTH_FAILURE = /^(WRONGPASS|NOAUTH|ERR invalid password|ERR AUTH)/

/**
 * True for errors that retrying cannot fix. With Entra ID an auth failure is not fatal:
 * a token may be late or rotating, and the service answers 503 until it works.
 */
export function isFatalConnectionError (error: Error & { code?: string, lastNodeError?: Error }, authIsFatal = true): boolean {
  // A cluster client reports the node's own error as lastNodeError.
  if (error.lastNodeError !== undefined) return isFatalConnectionError(error.lastNodeError, authIsFatal)
  return (error.code !== undefined && FATAL_CODES.has(error.code)) || (authIsFatal && AUTH_FAILURE.test(error.message))
}

/** Capped exponential backoff with jitter; it never gives up while the process lives. */
export function reconnectDelay (attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(10_000, 100 * 2 ** Math.min(attempt, 10))
  return Math.round(cap / 2 + random() * cap / 2)
}

export function redisOptions (config: RedisConfig, log: FastifyBaseLogger): RedisOptions {
  return {
    // Bounds each command; the store also bounds each whole operation.
    commandTimeout: config.timeoutMs,
    connectTimeout: config.timeoutMs,
    // A command waits for at most one reconnect, then fails: no unbounded queueing.
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => {
      const delayMs = reconnectDelay(attempt)
      log.warn({ attempt, delayMs }, '[STORE] Redis connection lost; reconnecting')
      return delayMs
    },
    // During a failover the old primary turns replica and answers READONLY: reconnect.
    reconnectOnError: (error) => error.message.startsWith('READONLY') ? 2 : false,
    ...(config.username === undefined ? {} : { username: config.username }),
    // A private CA is added to the public roots, not put in their place.
    ...(config.tls ? { tls: config.caFile === undefined ? {} : { ca: [...rootCertificates, readFileSync(config.caFile, 'utf8')] } } : {})
  }
}

/**
 * A cluster client. Nodes announce themselves by IP, so TLS must check certificates against
 * the configured host name: dnsLookup keeps names as they are, and servername is set.
 */
export function clusterOptions (config: RedisConfig, log: FastifyBaseLogger): ClusterOptions {
  const url = new URL(config.url)
  const { retryStrategy: _perNode, enableAutoPipelining: _pipelining, tls, ...nodeOptions } = redisOptions(config, log)
  const servername = isIP(url.hostname) === 0 ? { servername: url.hostname } : {}
  return {
    redisOptions: {
      ...nodeOptions,
      ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
      ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
      ...(tls === undefined ? {} : { tls: { ...tls, ...servername } })
    },
    dnsLookup: (address, callback) => { callback(null, address) },
    // Auto-pipelines group commands by node, not by slot; when slots move during a failover
    // ioredis cannot redirect such a batch and hands MOVED to the caller. Single commands
    // are redirected as they should be.
    enableAutoPipelining: false,
    slotsRefreshTimeout: config.timeoutMs,
    clusterRetryStrategy: (attempt) => {
      const delayMs = reconnectDelay(attempt)
      log.warn({ attempt, delayMs }, '[STORE] Redis cluster unreachable; reconnecting')
      return delayMs
    }
  }
}

/**
 * A cluster client does not report a seed node's TLS or auth failure, only that the slots
 * could not be fetched; so one plain connection to the seed tells fatal from unreachable.
 */
async function probeClusterSeed (config: RedisConfig, log: FastifyBaseLogger, extra: RedisOptions, authIsFatal: boolean): Promise<void> {
  const url = new URL(config.url)
  const probe = new Redis({
    ...clusterOptions(config, log).redisOptions,
    ...extra,
    host: url.hostname,
    port: Number(url.port === '' ? 6379 : url.port),
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0
  })
  const failure = await new Promise<Error | undefined>((resolve) => {
    probe.once('error', resolve)
    probe.connect().then(() => { resolve(undefined) }, resolve)
  })
  probe.disconnect()
  if (failure !== undefined && isFatalConnectionError(failure, authIsFatal)) throw failure
}

function createClient (config: RedisConfig, log: FastifyBaseLogger, extra: RedisOptions): RedisClient {
  if (!config.cluster) return new Redis(config.url, { ...redisOptions(config, log), ...extra })
  const url = new URL(config.url)
  const options = clusterOptions(config, log)
  options.redisOptions = { ...options.redisOptions, ...extra }
  return new Cluster([{ host: url.hostname, port: Number(url.port === '' ? 6379 : url.port) }], {
    ...options, ...(extra.lazyConnect === true ? { lazyConnect: true } : {})
  })
}

/** Every connection of the client: one, or one per cluster node. */
export function connectionsOf (client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('all') : [client]
}

/** Makes reconnects use the token, and re-authenticates the connections that are open. */
export async function applyToken (client: RedisClient, username: string, token: string): Promise<void> {
  if (client instanceof Cluster) {
    // New node connections are built from the connection pool's own copy of the options,
    // which ioredis offers no public way to change; the cluster rotation test guards this.
    const pool = (client as unknown as { connectionPool?: { redisOptions?: RedisOptions } }).connectionPool
    for (const options of [client.options.redisOptions, pool?.redisOptions]) {
      if (options !== undefined) Object.assign(options, { username, password: token })
    }
  }
  await Promise.all(connectionsOf(client).map(async (connection) => {
    connection.options.username = username
    connection.options.password = token
    if (connection.status === 'ready') await connection.call('AUTH', username, token)
  }))
}

/**
 * Waits for the first connection. Fatal misconfiguration rejects; an unreachable server
 * resolves false, so the service still starts, answers 503, and recovers by itself.
 */
function firstConnection (client: RedisClient, authIsFatal: boolean): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onReady = (): void => { settle(); resolve(true) }
    const onError = (error: Error): void => {
      settle()
      if (isFatalConnectionError(error, authIsFatal)) reject(error)
      else resolve(false)
    }
    const settle = (): void => { client.off('ready', onReady).off('error', onError) }
    client.on('ready', onReady).on('error', onError)
  })
}

/**
 * Creates the client and waits for its first connection. Misconfiguration that retrying
 * cannot fix rejects; an unreachable Redis gives `ready: false` and the client keeps trying.
 */
export async function openClient (config: RedisConfig, log: FastifyBaseLogger, extra: RedisOptions, authIsFatal: boolean): Promise<{ client: RedisClient, ready: boolean }> {
  const lazy = extra.lazyConnect === true
  try {
    if (config.cluster && !lazy) await probeClusterSeed(config, log, extra, authIsFatal)
  } catch (error) {
    throw new Error(`Redis refused the connection: ${(error as Error).message}`)
  }
  const client = createClient(config, log, extra)
  // Errors are logged by message only: ioredis errors never carry the password.
  client.on('error', (error: Error) => { log.warn({ err: error }, '[STORE] Redis error') })
  client.on('ready', () => { log.info('[STORE] Redis connection ready') })
  if (lazy) return { client, ready: false }
  try {
    return { client, ready: await firstConnection(client, authIsFatal) }
  } catch (error) {
    client.disconnect()
    throw new Error(`Redis refused the connection: ${(error as Error).message}`)
  }
}

/**
 * A real round trip, timed. A cluster serves only when it says so and every master
 * answers: a dead master's slots fail for a while before the cluster notices.
 */
export async function pingRedis (client: RedisClient): Promise<StoreHealth> {
  const started = performance.now()
  const health: StoreHealth = { latencyMs: 0, connection: client.status }
  if (client instanceof Cluster) {
    const info = await client.cluster('INFO') as string
    health.cluster = /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown'
    if (health.cluster !== 'ok') throw new Error(`CLUSTERDOWN cluster_state is ${String(health.cluster)}`)
    await Promise.all(client.nodes('master').map(async (node) => await node.ping()))
  } else {
    await client.ping()
  }
  health.latencyMs = Math.round((performance.now() - started) * 100) / 100
  return health
}
