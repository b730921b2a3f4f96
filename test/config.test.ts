import t from 'tap'
import { loadConfig } from '../src/config.js'

t.test('defaults suit a developer machine', async (t) => {
  t.match(loadConfig({}), {
    host: '0.0.0.0',
    port: 8080,
    logLevel: 'info',
    production: false,
    bodyLimit: 1048576,
    ttlSeconds: 86400,
    maxMessagesPerConversation: 10000,
    memoryMaxConversations: 10000,
    healthTimeoutMs: 1000,
    apiKeys: []
  })
})

t.test('reads every setting from the environment', async (t) => {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '3000',
    LOG_LEVEL: 'warn',
    BODY_LIMIT: '4096',
    REDIS_TTL: '60',
    API_KEYS: ' a, b ,,',
    MAX_MESSAGES_PER_CONVERSATION: '5',
    MEMORY_MAX_CONVERSATIONS: '7',
    HEALTH_TIMEOUT_MS: '250'
  })
  t.match(config, {
    host: '127.0.0.1',
    port: 3000,
    logLevel: 'warn',
    bodyLimit: 4096,
    ttlSeconds: 60,
    apiKeys: ['a', 'b'],
    maxMessagesPerConversation: 5,
    memoryMaxConversations: 7,
    healthTimeoutMs: 250
  })
})

t.test('load shedding thresholds: heap defaults to 90% of the V8 limit, 0 turns a check off', async (t) => {
  const defaults = loadConfig({})
  t.equal(defaults.maxEventLoopDelayMs, 1000)
  t.ok(defaults.maxHeapUsedBytes > 0)
  t.match(loadConfig({ MAX_HEAP_USED_BYTES: '0', MAX_EVENT_LOOP_DELAY_MS: '0' }), { maxHeapUsedBytes: 0, maxEventLoopDelayMs: 0 })
  t.equal(loadConfig({ METRICS_ENABLED: 'false' }).metricsEnabled, false)
})

t.test('an empty variable counts as unset', async (t) => {
  t.equal(loadConfig({ PORT: '' }).port, 8080)
})

for (const [name, value] of [['PORT', 'eighty'], ['PORT', '70000'], ['REDIS_TTL', '0'], ['LOG_LEVEL', 'loud'], ['AUTH_DISABLED', 'yes'], ['BODY_LIMIT', '1.5']]) {
  t.test(`a bad ${name} fails with one line naming it`, async (t) => {
    t.throws(() => loadConfig({ [name as string]: value as string }), {
      name: 'ConfigError',
      message: new RegExp(`^Invalid configuration: ${name as string}: [^\\n]+$`)
    })
  })
}

t.test('production refuses to start without API keys', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), { message: /API_KEYS/ })
  t.equal(loadConfig({ NODE_ENV: 'production', API_KEYS: 'k' }).production, true)
  t.same(loadConfig({ NODE_ENV: 'production', AUTH_DISABLED: 'true' }).apiKeys, [])
  t.same(loadConfig({ API_KEYS: 'k', AUTH_DISABLED: 'true' }).apiKeys, [], 'AUTH_DISABLED wins')
})

t.test('the Redis backend requires TLS unless plaintext is allowed', async (t) => {
  const secure = loadConfig({ REDIS_URL: 'rediss://:pw@cache.example:6380', REDIS_TLS_CA_FILE: '/ca.pem' })
  t.match(secure.redis, { url: 'rediss://:pw@cache.example:6380', tls: true, caFile: '/ca.pem', timeoutMs: 5000, keyPrefix: 'cs:', keepAliveMs: 60000 })
  t.equal(secure.redisPlaintext, false)
  t.throws(() => loadConfig({ REDIS_URL: 'redis://:pw@localhost:6379' }), { message: /^Invalid configuration: REDIS_URL: redis:\/\/ is plaintext/ })
  const plain = loadConfig({ REDIS_URL: 'redis://localhost:6379', REDIS_ALLOW_PLAINTEXT: 'true' })
  t.match(plain, { redis: { tls: false }, redisPlaintext: true })
  t.equal(loadConfig({}).redis, undefined)
})

t.test('a bad REDIS_URL is named without repeating it', async (t) => {
  for (const url of ['http://:secret@host', 'not a url :secret']) {
    const error = t.throws(() => loadConfig({ REDIS_URL: url })) as Error
    t.match(error.message, /^Invalid configuration: REDIS_URL: /)
    t.notMatch(error.message, /secret/)
  }
})

t.test('REDIS_KEY_PREFIX may not contain braces, which would change hash slots', async (t) => {
  t.throws(() => loadConfig({ REDIS_URL: 'rediss://h', REDIS_KEY_PREFIX: 'a{b}:' }), { message: /^Invalid configuration: REDIS_KEY_PREFIX/ })
})
