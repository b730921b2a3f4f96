import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { authEnv, callersFile, CALLERS, OPS_KEY } from './helpers/access-suite.js'
import { build } from './helpers/build.js'
import { startIdentityProvider } from './helpers/identity-provider.js'

// Entra ID tokens and the callers file at the HTTP edge, on the memory backend: the
// configuration rules, the identity provider's outages, key rotation, both signature
// algorithms, keys of the callers file, and the OpenAPI document. The same rules on
// Redis and Cluster: access-suite.ts.

const idp = await startIdentityProvider()
t.teardown(() => idp.close())

const list: InjectOptions = { method: 'GET', url: '/v1/users/u1/conversations' }
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

function fileWith (content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'callers-')), 'callers.json')
  writeFileSync(path, content)
  return path
}

t.test('configuration', async (t) => {
  const env = authEnv(idp)
  t.match(loadConfig(env), { jwt: { issuer: idp.issuer, audiences: ['api://conversation-store'], jwksUrl: idp.jwksUrl, timeoutMs: 3000 } })
  t.same(loadConfig({ ...env, AUTH_JWT_AUDIENCE: 'a, b' }).jwt?.audiences, ['a', 'b'], 'several audiences')
  t.equal(loadConfig(env).callers.length, CALLERS.callers.length)
  t.equal(loadConfig({ ...env, RATE_LIMIT_PER_MINUTE: '5' }).rateLimitPerMinute, 5)

  for (const [name, settings, message] of [
    ['an issuer without an audience', { AUTH_JWT_ISSUER: idp.issuer }, /AUTH_JWT_AUDIENCE: required/],
    ['an audience without an issuer', { AUTH_JWT_AUDIENCE: 'x' }, /AUTH_JWT_ISSUER: required/],
    ['tokens without a callers file', { AUTH_JWT_ISSUER: idp.issuer, AUTH_JWT_AUDIENCE: 'x' }, /AUTH_CALLERS_FILE: required/],
    ['tokens with a callers file of keys only', { ...env, AUTH_CALLERS_FILE: callersFile({ callers: [CALLERS.callers[6]] }) }, /an appId for each app/],
    ['an issuer that is not a URL', { ...env, AUTH_JWT_ISSUER: 'contoso' }, /AUTH_JWT_ISSUER/],
    ['a callers file that is missing', { AUTH_CALLERS_FILE: '/nonexistent/callers.json' }, /AUTH_CALLERS_FILE: cannot read .* \(ENOENT\)/],
    ['a callers file that is not JSON', { AUTH_CALLERS_FILE: fileWith('{ callers: ') }, /AUTH_CALLERS_FILE: cannot read .* as JSON/],
    ['a caller without roles', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: [], tenants: ['*'] }] }) }, /callers\.0\.roles/],
    ['an unknown role', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['root'], tenants: ['*'] }] }) }, /callers\.0\.roles\.0/],
    ['a caller without tenants', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['read'], tenants: [] }] }) }, /callers\.0\.tenants/],
    ['a caller with neither app nor key', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', roles: ['read'], tenants: ['*'] }] }) }, /needs an appId or an apiKeySha256/],
    ['a key that is not a SHA-256', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', apiKeySha256: 'abc', roles: ['read'], tenants: ['*'] }] }) }, /64 hex digits/],
    ['two callers of one name', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['read'], tenants: ['*'] }, { name: 'a', appId: 'y', roles: ['read'], tenants: ['*'] }] }) }, /names must be unique/],
    ['two callers of one app', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['read'], tenants: ['*'] }, { name: 'b', appId: 'x', roles: ['read'], tenants: ['*'] }] }) }, /appId may name one caller/],
    ['an unknown field', { AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['read'], tenants: ['*'], key: 'secret' }] }) }, /callers\.0/]
  ] as const) {
    t.throws(() => loadConfig(settings), { name: 'ConfigError', message }, name)
  }
  t.throws(() => loadConfig({ AUTH_CALLERS_FILE: callersFile({ callers: [{ name: 'a', appId: 'x', roles: ['read'], tenants: ['*'], key: 'the-secret' }] }) }),
    { message: /^(?!.*the-secret)/ }, 'the error never repeats the file\'s content')

  t.test('production needs keys, a callers file, or AUTH_DISABLED', async (t) => {
    t.throws(() => loadConfig({ NODE_ENV: 'production' }), { message: /API_KEYS: required when NODE_ENV=production/ })
    t.equal(loadConfig({ NODE_ENV: 'production', ...env }).production, true, 'tokens and callers will do')
    t.same(loadConfig({ ...env, AUTH_DISABLED: 'true' }).callers, [], 'AUTH_DISABLED wins')
  })
})

t.test('both signature algorithms, and the callers file\'s keys', async (t) => {
  const app = await build(t, authEnv(idp))
  t.equal((await app.inject({ ...list, headers: bearer(await idp.sign({ azp: 'app-reader' }, { alg: 'RS256' })) })).statusCode, 200, 'RS256')
  t.equal((await app.inject({ ...list, headers: bearer(await idp.sign({ azp: 'app-reader' }, { alg: 'ES256' })) })).statusCode, 200, 'ES256')
  t.equal((await app.inject({ ...list, headers: bearer(await idp.sign({ azp: undefined, appid: 'app-reader', ver: '1.0' })) })).statusCode, 200, 'a v1 token names its app in appid')
  t.equal((await app.inject({ ...list, headers: bearer(OPS_KEY) })).statusCode, 200, 'a key whose hash is in the file')
  const wrong = await app.inject({ ...list, headers: bearer(`${OPS_KEY}x`) })
  t.equal(wrong.statusCode, 401, 'a key that is not in the file is refused as a token')
  t.equal(wrong.headers['www-authenticate'], 'Bearer error="invalid_token"')
  t.equal((await app.inject({ ...list, headers: bearer('a.b.c') })).statusCode, 401, 'a malformed token')
})

t.test('a key of the callers file has its roles and tenants', async (t) => {
  const key = 'limited-key-42'
  const { createHash } = await import('node:crypto')
  const file = callersFile({
    callers: [...CALLERS.callers, { name: 'limited', apiKeySha256: createHash('sha256').update(key).digest('hex').toUpperCase(), roles: ['read'], tenants: ['contoso'] }]
  })
  const app = await build(t, authEnv(idp, file))
  const created = await app.inject({ method: 'POST', url: '/v1/conversations', headers: bearer(OPS_KEY), payload: { id: 'f1', userId: 'u1', tenantId: 'fabrikam' } })
  t.equal(created.statusCode, 201)
  t.equal((await app.inject({ method: 'GET', url: '/v1/conversations/f1', headers: bearer(key) })).statusCode, 404, 'another tenant is absent')
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/conversations/f1', headers: bearer(key) })).statusCode, 403, 'read only')
})

t.test('the identity provider away: 503 AUTH_UNAVAILABLE with Retry-After, never 401', async (t) => {
  const app = await build(t, { ...authEnv(idp), AUTH_TIMEOUT_MS: '300' })
  const token = await idp.sign({ azp: 'app-writer' })
  idp.setMode('down')
  t.teardown(() => idp.setMode('up'))
  const refused = await app.inject({ method: 'POST', url: '/v1/conversations', headers: bearer(token), payload: { id: 'away', userId: 'u1', tenantId: 'contoso' } })
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '1')
  t.match(refused.json(), { statusCode: 503, code: 'AUTH_UNAVAILABLE' })
  idp.setMode('hang')
  const hung = await build(t, { ...authEnv(idp), AUTH_TIMEOUT_MS: '300' })
  const started = Date.now()
  t.equal((await hung.inject({ ...list, headers: bearer(token) })).statusCode, 503, 'a provider that hangs is away too')
  t.ok(Date.now() - started < 5000, 'within the bound')
  idp.setMode('up')
  const ops = await app.inject({ method: 'GET', url: '/v1/conversations/away', headers: bearer(OPS_KEY) })
  t.equal(ops.statusCode, 404, 'the refused write changed nothing')
})

t.test('keys fetched before an outage keep working through it', async (t) => {
  const app = await build(t, authEnv(idp))
  const token = await idp.sign({ azp: 'app-reader' })
  t.equal((await app.inject({ ...list, headers: bearer(token) })).statusCode, 200)
  idp.setMode('down')
  t.teardown(() => idp.setMode('up'))
  t.equal((await app.inject({ ...list, headers: bearer(await idp.sign({ azp: 'app-reader' })) })).statusCode, 200)
})

t.test('key rotation: a token of a new key fetches the key set again', async (t) => {
  const app = await build(t, authEnv(idp))
  t.equal((await app.inject({ ...list, headers: bearer(await idp.sign({ azp: 'app-reader' })) })).statusCode, 200)
  const before = idp.requests.jwks
  await idp.rotate()
  // The set was fetched moments ago: the refetch waits out the cooldown, as it should.
  const early = await app.inject({ ...list, headers: bearer(await idp.sign({ azp: 'app-reader' })) })
  t.equal(early.statusCode, 401, 'within 30 s of the last fetch an unknown key is not looked up')
  t.equal(idp.requests.jwks, before)
})

t.test('the OpenAPI document describes both schemes and the 403 and 429 answers', async (t) => {
  const app = await build(t, { ...authEnv(idp), API_KEYS: 'k', RATE_LIMIT_PER_MINUTE: '100' })
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.match(document.components.securitySchemes, { apiKey: { type: 'http', scheme: 'bearer' }, entraId: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } })
  const post = document.paths['/v1/conversations'].post
  t.same(post.security, [{ apiKey: [] }, { entraId: [] }])
  t.ok('403' in post.responses && '429' in post.responses)
  t.notOk('429' in document.paths['/health'].get.responses, 'health is never limited')
})
