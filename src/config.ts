import { getHeapStatistics } from 'node:v8'
import { z } from 'zod'
import { loadCallers, type CallerEntry } from './auth/callers.js'
import { TOKEN_ENCODINGS, type TokenEncoding } from './tokens.js'

const flag = z.enum(['true', 'false']).default('false').transform((value) => value === 'true')
const integer = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(fallback)

// Every setting the service reads, with its default. Parsed once at start-up.
const EnvSchema = z.object({
  NODE_ENV: z.string().default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: integer(8080, 0, 65535),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BODY_LIMIT: integer(1024 * 1024, 1024),
  REDIS_URL: z.string().optional(),
  REDIS_TTL: integer(86400, 1),
  MAX_TTL_SECONDS: integer(90 * 86400, 1),
  MAX_MESSAGES_PER_CONVERSATION: integer(10000, 1),
  MAX_CONVERSATIONS_PER_USER: z.coerce.number().int().min(1).optional(),
  IMPORT_MAX_BYTES: integer(256 * 1024 * 1024, 1024),
  STREAM_IDLE_TIMEOUT_SECONDS: integer(120, 1, 86400),
  EVENTS_RETAINED: integer(10_000, 1, 1_000_000),
  EVENTS_HEARTBEAT_SECONDS: integer(15, 1, 200),
  EVENTS_MAX_CONNECTIONS: integer(10_000, 1),
  MAX_DELTA_CHARS: integer(16 * 1024, 1),
  MAX_STREAMED_TEXT_CHARS: integer(1024 * 1024, 1),
  MEMORY_MAX_CONVERSATIONS: integer(10000, 1),
  MEMORY_MAX_BYTES: z.coerce.number().int().min(1024).optional(),
  VIEW_CACHE_MAX_BYTES: integer(32 * 1024 * 1024, 0),
  TOKEN_ENCODING: z.enum(TOKEN_ENCODINGS).default('o200k_base'),
  HEALTH_TIMEOUT_MS: integer(1000, 1),
  SHUTDOWN_TIMEOUT_MS: integer(4500, 1),
  RETRY_AFTER_SECONDS: integer(1, 0),
  API_KEYS: z.string().optional(),
  AUTH_DISABLED: flag,
  AUTH_JWT_ISSUER: z.url().optional(),
  AUTH_JWT_AUDIENCE: z.string().optional(),
  AUTH_JWKS_URL: z.url().optional(),
  AUTH_CALLERS_FILE: z.string().optional(),
  AUTH_TIMEOUT_MS: integer(3000, 50),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  METRICS_ENABLED: z.enum(['true', 'false']).default('true').transform((value) => value === 'true'),
  MAX_EVENT_LOOP_DELAY_MS: integer(1000, 0),
  MAX_HEAP_USED_BYTES: z.coerce.number().int().min(0).optional(),
  REDIS_ALLOW_PLAINTEXT: flag,
  REDIS_TLS_CA_FILE: z.string().optional(),
  REDIS_TIMEOUT: integer(5000, 50),
  // Braces would turn the prefix into a Redis Cluster hash tag of its own.
  REDIS_KEY_PREFIX: z.string().regex(/^[^{}\s]*$/, 'must not contain braces or whitespace').default('cs:'),
  REDIS_KEEPALIVE_MS: integer(60000, 1000),
  REDIS_CLUSTER: flag,
  REDIS_AUTH: z.enum(['password', 'entra']).default('password'),
  REDIS_USERNAME: z.string().min(1).optional()
})

export interface RedisConfig {
  /** Contains credentials: never log it. */
  url: string
  tls: boolean
  caFile?: string
  timeoutMs: number
  keyPrefix: string
  keepAliveMs: number
  /** Use a Redis Cluster client (Azure Managed Redis with the OSS clustering policy). */
  cluster: boolean
  /** `entra`: the password is a Microsoft Entra ID access token, refreshed before expiry. */
  auth: 'password' | 'entra'
  /** The Entra identity's object id, when `auth` is `entra`. */
  username?: string
}

/** Microsoft Entra ID (or any OpenID Connect) access tokens, when AUTH_JWT_ISSUER is set. */
export interface JwtConfig {
  issuer: string
  audiences: string[]
  /** Unset: the issuer's /.well-known/openid-configuration names it. */
  jwksUrl?: string
  /** Bound on each fetch of the key set or the discovery document. */
  timeoutMs: number
}

export interface Config {
  host: string
  port: number
  logLevel: string
  production: boolean
  bodyLimit: number
  ttlSeconds: number
  /** The longest `ttlSeconds` a conversation may ask for. */
  maxTtlSeconds: number
  maxMessagesPerConversation: number
  /** A create past it deletes the user's least recently updated conversations; unset: no cap. */
  maxConversationsPerUser?: number
  /** The largest body an import may send (its own bound: BODY_LIMIT is for JSON bodies). */
  importMaxBytes: number
  /** How many events each conversation keeps for followers that resume. */
  eventsRetained: number
  /** A comment line goes to every event stream this often (well under Azure's 230 s idle timeout). */
  eventsHeartbeatSeconds: number
  /** The most event streams one instance serves at once (then 503). */
  eventsMaxConnections: number
  /** An in_progress message without a delta for this long becomes incomplete (timeout). */
  streamIdleTimeoutSeconds: number
  /** The longest text of one delta, and of a streamed message, in characters (413 past either). */
  maxDeltaChars: number
  maxStreamedTextChars: number
  memoryMaxConversations: number
  /** Bound on the memory backend's stored size (the JSON of its conversations); unset: see defaultMemoryMaxBytes. */
  memoryMaxBytes?: number
  /** Bound on the validated, serialised views each process keeps for reads; 0 turns them off. */
  viewCacheMaxBytes: number
  /** How message tokens are counted for context windows. */
  tokenEncoding: TokenEncoding
  healthTimeoutMs: number
  shutdownTimeoutMs: number
  retryAfterSeconds: number
  /** Bearer tokens accepted on /v1 with full access; empty when authentication is disabled. */
  apiKeys: string[]
  /** The callers file's entries; empty without one, or when authentication is disabled. */
  callers: CallerEntry[]
  jwt?: JwtConfig
  /** Requests per minute and caller on /v1; unset: no limit but the callers' own. */
  rateLimitPerMinute?: number
  metricsEnabled: boolean
  /** Load shedding thresholds; 0 turns a check off. */
  maxEventLoopDelayMs: number
  maxHeapUsedBytes: number
  /** Set when REDIS_URL is; the memory backend is used otherwise. */
  redis?: RedisConfig
  /** Set when a redis:// URL was allowed, so that start-up can warn about it. */
  redisPlaintext: boolean
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Parses the environment; throws a ConfigError whose message names the variable. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable counts as unset, as it does in most deployment tools.
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
  const parsed = EnvSchema.safeParse(set)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    throw new ConfigError(`Invalid configuration: ${issue.path.join('.')}: ${issue.message}`)
  }
  const settings = parsed.data
  const apiKeys = (settings.API_KEYS ?? '').split(',').map((key) => key.trim()).filter((key) => key !== '')
  const production = settings.NODE_ENV === 'production'
  const callers = settings.AUTH_DISABLED ? [] : callersFrom(settings.AUTH_CALLERS_FILE)
  const jwt = settings.AUTH_DISABLED ? undefined : jwtConfig(settings, callers)
  if (production && apiKeys.length === 0 && callers.length === 0 && !settings.AUTH_DISABLED) {
    throw new ConfigError('Invalid configuration: API_KEYS: required when NODE_ENV=production, unless AUTH_CALLERS_FILE names callers (or set AUTH_DISABLED=true)')
  }
  const redis = settings.REDIS_URL === undefined ? undefined : redisConfig(settings.REDIS_URL, settings)
  return {
    host: settings.HOST,
    port: settings.PORT,
    logLevel: settings.LOG_LEVEL,
    production,
    bodyLimit: settings.BODY_LIMIT,
    ttlSeconds: settings.REDIS_TTL,
    maxTtlSeconds: settings.MAX_TTL_SECONDS,
    maxMessagesPerConversation: settings.MAX_MESSAGES_PER_CONVERSATION,
    ...(settings.MAX_CONVERSATIONS_PER_USER === undefined ? {} : { maxConversationsPerUser: settings.MAX_CONVERSATIONS_PER_USER }),
    importMaxBytes: settings.IMPORT_MAX_BYTES,
    streamIdleTimeoutSeconds: settings.STREAM_IDLE_TIMEOUT_SECONDS,
    eventsRetained: settings.EVENTS_RETAINED,
    eventsHeartbeatSeconds: settings.EVENTS_HEARTBEAT_SECONDS,
    eventsMaxConnections: settings.EVENTS_MAX_CONNECTIONS,
    maxDeltaChars: settings.MAX_DELTA_CHARS,
    maxStreamedTextChars: settings.MAX_STREAMED_TEXT_CHARS,
    memoryMaxConversations: settings.MEMORY_MAX_CONVERSATIONS,
    ...(settings.MEMORY_MAX_BYTES === undefined ? {} : { memoryMaxBytes: settings.MEMORY_MAX_BYTES }),
    viewCacheMaxBytes: settings.VIEW_CACHE_MAX_BYTES,
    tokenEncoding: settings.TOKEN_ENCODING,
    healthTimeoutMs: settings.HEALTH_TIMEOUT_MS,
    shutdownTimeoutMs: settings.SHUTDOWN_TIMEOUT_MS,
    retryAfterSeconds: settings.RETRY_AFTER_SECONDS,
    metricsEnabled: settings.METRICS_ENABLED,
    maxEventLoopDelayMs: settings.MAX_EVENT_LOOP_DELAY_MS,
    // By default, shed load before V8 runs out of heap.
    maxHeapUsedBytes: settings.MAX_HEAP_USED_BYTES ?? Math.floor(getHeapStatistics().heap_size_limit * 0.9),
    apiKeys: settings.AUTH_DISABLED ? [] : apiKeys,
    callers,
    ...(jwt === undefined ? {} : { jwt }),
    ...(settings.RATE_LIMIT_PER_MINUTE === undefined ? {} : { rateLimitPerMinute: settings.RATE_LIMIT_PER_MINUTE }),
    ...(redis === undefined ? {} : { redis }),
    redisPlaintext: redis !== undefined && !redis.tls
  }
}

function callersFrom (path: string | undefined): CallerEntry[] {
  if (path === undefined) return []
  try {
    return loadCallers(path)
  } catch (error) {
    throw new ConfigError(`Invalid configuration: AUTH_CALLERS_FILE: ${(error as Error).message}`)
  }
}

function jwtConfig (settings: z.output<typeof EnvSchema>, callers: CallerEntry[]): JwtConfig | undefined {
  const { AUTH_JWT_ISSUER: issuer, AUTH_JWT_AUDIENCE: audience } = settings
  if (issuer === undefined && audience === undefined) return undefined
  if (issuer === undefined) throw new ConfigError('Invalid configuration: AUTH_JWT_ISSUER: required with AUTH_JWT_AUDIENCE')
  const audiences = (audience ?? '').split(',').map((value) => value.trim()).filter((value) => value !== '')
  if (audiences.length === 0) throw new ConfigError('Invalid configuration: AUTH_JWT_AUDIENCE: required with AUTH_JWT_ISSUER')
  // A token names its caller by app id; without entries for apps, every token would be refused.
  if (!callers.some((caller) => caller.appId !== undefined)) {
    throw new ConfigError('Invalid configuration: AUTH_CALLERS_FILE: required with AUTH_JWT_ISSUER, with an appId for each app that may call')
  }
  return {
    issuer,
    audiences,
    ...(settings.AUTH_JWKS_URL === undefined ? {} : { jwksUrl: settings.AUTH_JWKS_URL }),
    timeoutMs: settings.AUTH_TIMEOUT_MS
  }
}

function redisConfig (url: string, settings: z.output<typeof EnvSchema>): RedisConfig {
  // The messages name the variable but never repeat the URL, which may hold a password.
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    throw new ConfigError('Invalid configuration: REDIS_URL: not a valid URL')
  }
  if (protocol !== 'rediss:' && protocol !== 'redis:') {
    throw new ConfigError('Invalid configuration: REDIS_URL: must start with rediss:// (TLS)')
  }
  if (protocol === 'redis:' && !settings.REDIS_ALLOW_PLAINTEXT) {
    throw new ConfigError('Invalid configuration: REDIS_URL: redis:// is plaintext; use rediss://, or set REDIS_ALLOW_PLAINTEXT=true for local development')
  }
  if (settings.REDIS_AUTH === 'entra' && settings.REDIS_USERNAME === undefined) {
    throw new ConfigError("Invalid configuration: REDIS_USERNAME: required with REDIS_AUTH=entra (the identity's object id)")
  }
  return {
    url,
    tls: protocol === 'rediss:',
    ...(settings.REDIS_TLS_CA_FILE === undefined ? {} : { caFile: settings.REDIS_TLS_CA_FILE }),
    timeoutMs: settings.REDIS_TIMEOUT,
    keyPrefix: settings.REDIS_KEY_PREFIX,
    keepAliveMs: settings.REDIS_KEEPALIVE_MS,
    cluster: settings.REDIS_CLUSTER,
    auth: settings.REDIS_AUTH,
    ...(settings.REDIS_USERNAME === undefined ? {} : { username: settings.REDIS_USERNAME })
  }
}
