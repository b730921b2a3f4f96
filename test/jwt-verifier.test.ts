import { generateKeyPairSync, KeyObject, randomUUID, sign as signBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { CompactSign, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { createJwtVerifier, IdentityProviderUnavailableError, InvalidTokenError, type JwtVerifierOptions } from '../src/auth/jwt-verifier.js'
import { startIdentityProvider, type IdentityProvider } from './helpers/identity-provider.js'

const AUDIENCE = 'api://conversation-store'

async function setup (t: Test, options: Partial<JwtVerifierOptions> = {}) {
  const idp = await startIdentityProvider()
  t.teardown(() => idp.close())
  const verifier = createJwtVerifier({ issuer: idp.issuer, audiences: [AUDIENCE], jwksUrl: idp.jwksUrl, timeoutMs: 1000, ...options })
  return { idp, verifier }
}

/** Resolves to what `verify` rejected with, after checking its class and that the message does not leak the token. */
async function rejection (t: Test, verify: Promise<unknown>, token: string, wanted: typeof InvalidTokenError | typeof IdentityProviderUnavailableError, name: string) {
  const err = await verify.then(() => undefined, (err: unknown) => err)
  t.type(err, wanted, `${name}: ${wanted.name}`)
  if (token.length > 5) t.notOk(String((err as Error | undefined)?.message).includes(token), `${name}: the message does not contain the token`)
  return err
}

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)

t.test('valid RS256 and ES256 tokens verify and say who called', async (t) => {
  const { idp, verifier } = await setup(t, { audiences: [AUDIENCE, 'api://other-name'] })
  const oid = randomUUID()
  t.same(await verifier.verify(await idp.sign({ oid })), { appId: 'app-1', delegated: false, objectId: oid, tenantId: 'tenant-guid' }, 'RS256, v2 azp, app-only')
  t.same(await verifier.verify(await idp.sign({ oid }, { alg: 'ES256' })), { appId: 'app-1', delegated: false, objectId: oid, tenantId: 'tenant-guid' }, 'ES256')
  t.same(await verifier.verify(await idp.sign({ azp: undefined, appid: 'app-v1', ver: '1.0', oid: undefined, tid: undefined })), { appId: 'app-v1', delegated: false }, 'v1 appid; oid and tid are optional')
  t.same(await verifier.verify(await idp.sign({ scp: 'Conversations.ReadWrite', oid })), { appId: 'app-1', delegated: true, objectId: oid, tenantId: 'tenant-guid' }, 'scp means delegated')
  t.equal((await verifier.verify(await idp.sign({ aud: 'api://other-name' }))).appId, 'app-1', 'the second audience is accepted')
  t.ok(await verifier.verify(await idp.sign({ exp: now() - 30 })), 'expired 30 s ago is within the 60 s clock tolerance')
  t.ok(await verifier.verify(await idp.sign({ nbf: now() + 30 })), 'valid in 30 s is within the tolerance')
  t.equal(idp.requests.jwks, 1, 'the key set was fetched once')
})

t.test('concurrent first verifies share one fetch', async (t) => {
  const { idp, verifier } = await setup(t, { jwksUrl: undefined })
  const tokens = await Promise.all(Array.from({ length: 5 }, async () => await idp.sign()))
  const verified = await Promise.all(tokens.map(async (token) => await verifier.verify(token)))
  t.equal(verified.length, 5)
  t.same(idp.requests, { discovery: 1, jwks: 1 })
})

t.test('tokens that must be rejected are InvalidTokenError', async (t) => {
  const { idp, verifier } = await setup(t)
  const valid = await idp.sign()
  const [header = '', payload = '', signature = ''] = valid.split('.')
  const { kid, privateKey } = idp.currentKey('RS256')
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  const cases: Record<string, string | Promise<string>> = {
    'signed by a key outside the JWKS under a published kid': `${header}.${payload}.${signBytes('sha256', Buffer.from(`${header}.${payload}`), stranger).toString('base64url')}`,
    'tampered payload': `${header}.${b64({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), azp: 'someone-else' })}.${signature}`,
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`,
    'alg none with the original signature': `${b64({ alg: 'none', kid })}.${payload}.${signature}`,
    HS256: new SignJWT({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()) }).setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long')),
    'wrong issuer': idp.sign({ iss: 'https://login.microsoftonline.com/another-tenant/v2.0' }),
    'wrong audience': idp.sign({ aud: 'api://another-service' }),
    'expired 2 minutes ago': idp.sign({ exp: now() - 120 }),
    'not valid for 2 more minutes': idp.sign({ nbf: now() + 120 }),
    'no exp': idp.sign({ exp: undefined }),
    'no azp and no appid': idp.sign({ azp: undefined, appid: undefined }),
    'signed payload that is not JSON': new CompactSign(new TextEncoder().encode('not json')).setProtectedHeader({ alg: 'RS256', kid }).sign(privateKey),
    'header that is not JSON': `${b64('{"alg":')}.${payload}.${signature}`,
    'bad base64': `${header}.${payload}.!!!`,
    abc: 'abc',
    'a.b.c': 'a.b.c',
    'empty string': ''
  }
  for (const [name, pending] of Object.entries(cases)) {
    const token = await pending
    await rejection(t, verifier.verify(token), token, InvalidTokenError, name)
  }
  t.ok(await verifier.verify(valid), 'the untampered token still verifies')
})

t.test('algorithms other than RS256 and ES256 are refused before any key lookup', async (t) => {
  const { idp, verifier } = await setup(t)
  const [, payload = ''] = (await idp.sign()).split('.')
  const { kid, privateKey } = idp.currentKey('RS256')
  const rsaSigned = (alg: string, hash: string) => {
    const input = `${b64({ alg, kid })}.${payload}`
    return `${input}.${signBytes(hash, Buffer.from(input), KeyObject.from(privateKey)).toString('base64url')}`
  }
  const cases = {
    none: `${b64({ alg: 'none' })}.${payload}.`,
    HS256: await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long')),
    'RS512 with the published RSA key': rsaSigned('RS512', 'sha512')
  }
  for (const [name, token] of Object.entries(cases)) await rejection(t, verifier.verify(token), token, InvalidTokenError, name)
  t.equal(idp.requests.jwks, 0, 'no key set was fetched for them')
})

t.test('key rotation: a new kid refetches the key set, at most once per cooldown', async (t) => {
  const { idp, verifier } = await setup(t, { refetchCooldownMs: 300 })
  const before = await idp.sign()
  await verifier.verify(before)
  t.equal(idp.requests.jwks, 1)

  await sleep(350)
  const unknown = () => idp.sign({}, { kid: randomUUID() })
  const burst = await Promise.all(Array.from({ length: 10 }, unknown))
  for (const token of burst) await rejection(t, verifier.verify(token), token, InvalidTokenError, 'unknown kid')
  await Promise.all(burst.map(async (token) => await rejection(t, verifier.verify(token), token, InvalidTokenError, 'unknown kid, concurrently')))
  t.equal(idp.requests.jwks, 2, 'a burst of unknown kids made one extra fetch')

  await sleep(350)
  await idp.rotate()
  t.ok(await verifier.verify(await idp.sign()), 'a token signed with the new key verifies')
  t.ok(await verifier.verify(await idp.sign({}, { alg: 'ES256' })), 'so does one with the new EC key')
  t.equal(idp.requests.jwks, 3, 'after one refetch')
  await rejection(t, verifier.verify(before), before, InvalidTokenError, 'the key that left the JWKS')
  t.equal(idp.requests.jwks, 3, 'which does not refetch within the cooldown')
})

t.test('without jwksUrl the key set is found through discovery, once', async (t) => {
  const { idp, verifier } = await setup(t, { jwksUrl: undefined, refetchCooldownMs: 0 })
  t.ok(await verifier.verify(await idp.sign()))
  await idp.rotate()
  t.ok(await verifier.verify(await idp.sign()))
  t.same(idp.requests, { discovery: 1, jwks: 2 }, 'the jwks_uri is cached')

  const trailing = createJwtVerifier({ issuer: `${idp.issuer}/`, audiences: [AUDIENCE], timeoutMs: 1000 })
  t.ok(await trailing.verify(await idp.sign({ iss: `${idp.issuer}/` })), 'an issuer with a trailing slash discovers the same document')
})

t.test('a failed discovery is retried on a later verify, but not within the cooldown', async (t) => {
  const { idp, verifier } = await setup(t, { jwksUrl: undefined, refetchCooldownMs: 300 })
  const token = await idp.sign()
  idp.setMode('down')
  await rejection(t, verifier.verify(token), token, IdentityProviderUnavailableError, 'discovery down')
  idp.setMode('up')
  await rejection(t, verifier.verify(token), token, IdentityProviderUnavailableError, 'within the cooldown the failure stands')
  t.same(idp.requests, { discovery: 1, jwks: 0 }, 'without another request')
  await sleep(350)
  t.ok(await verifier.verify(token), 'after the cooldown discovery is retried')
  t.same(idp.requests, { discovery: 2, jwks: 1 })
})

t.test('keys that cannot be fetched, and none cached, are IdentityProviderUnavailableError', async (t) => {
  const { idp, verifier } = await setup(t)
  const token = await idp.sign()
  idp.setMode('down')
  await rejection(t, verifier.verify(token), token, IdentityProviderUnavailableError, 'HTTP 503')

  const closed = await startIdentityProvider()
  await closed.close()
  const urls = { 'HTTP 404': `${idp.issuer}/no-such-path`, 'not a key set': `${idp.issuer}/.well-known/openid-configuration`, 'connection refused': closed.jwksUrl }
  idp.setMode('up')
  for (const [name, jwksUrl] of Object.entries(urls)) {
    const other = createJwtVerifier({ issuer: idp.issuer, audiences: [AUDIENCE], jwksUrl, timeoutMs: 1000 })
    await rejection(t, other.verify(token), token, IdentityProviderUnavailableError, name)
  }
})

t.test('a provider that never answers is IdentityProviderUnavailableError within timeoutMs', async (t) => {
  const { idp, verifier } = await setup(t, { timeoutMs: 200 })
  const token = await idp.sign()
  idp.setMode('hang')
  const started = performance.now()
  await rejection(t, verifier.verify(token), token, IdentityProviderUnavailableError, 'hang')
  const elapsed = performance.now() - started
  t.ok(elapsed >= 150 && elapsed < 1000, `gave up after ${Math.round(elapsed)} ms`)
})

t.test('while the provider is down, cached keys still verify', async (t) => {
  const { idp, verifier } = await setup(t, { cacheMaxAgeMs: 1, refetchCooldownMs: 0 })
  const token = await idp.sign()
  t.ok(await verifier.verify(token))
  idp.setMode('down')
  await sleep(10)
  t.ok(await verifier.verify(token), 'a stale set whose reload failed still has the key')
  t.ok(await verifier.verify(await idp.sign({}, { alg: 'ES256' })), 'and the EC key')
  t.equal(idp.requests.jwks, 3, 'each stale verify tried a reload')
  const unknown = await idp.sign({}, { kid: randomUUID() })
  await rejection(t, verifier.verify(unknown), unknown, IdentityProviderUnavailableError, 'unknown kid, refetch attempted and failed')
})

t.test('while the provider is down, an unknown kid within the cooldown is invalid without a fetch', async (t) => {
  const { idp, verifier } = await setup(t)
  t.ok(await verifier.verify(await idp.sign()))
  idp.setMode('down')
  const unknown = await idp.sign({}, { kid: randomUUID() })
  await rejection(t, verifier.verify(unknown), unknown, InvalidTokenError, 'the last fetch succeeded, so the set is current')
  t.equal(idp.requests.jwks, 1, 'no fetch was tried')
})

t.test('the helper closes with a request still hanging', async (t) => {
  const idp: IdentityProvider = await startIdentityProvider()
  idp.setMode('hang')
  const pending = fetch(idp.jwksUrl).catch((err: unknown) => err)
  await sleep(20)
  await idp.close()
  t.type(await pending, Error, 'the hung request failed when the server closed')
})
