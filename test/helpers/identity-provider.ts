import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'

type Alg = 'RS256' | 'ES256'
type Mode = 'up' | 'down' | 'hang'

interface SigningKey { kid: string, privateKey: CryptoKey, publicJwk: JWK }

export interface IdentityProvider {
  issuer: string
  jwksUrl: string
  /** Signs a token with the current key of that kind. Defaults: iss=issuer, aud='api://conversation-store', exp in 1 h, iat now, azp='app-1', oid random uuid, tid='tenant-guid', ver '2.0'. `claims` override/extend; a claim set to undefined is removed. */
  sign (claims?: Record<string, unknown>, options?: { alg?: Alg, kid?: string, header?: Record<string, unknown> }): Promise<string>
  /** Makes a new RSA (and EC) key pair with new kids and publishes only them (the old ones leave the JWKS). */
  rotate (): Promise<void>
  /** 'up' (default), 'down' (the server answers 503 to everything), or 'hang' (never answers). */
  setMode (mode: Mode): void
  /** How many JWKS and discovery requests it has received, whatever the mode (503s and hung ones count). */
  requests: { jwks: number, discovery: number }
  /** The kid and private key of the current key of that alg, for tests that need to sign by hand. */
  currentKey (alg: Alg): { kid: string, privateKey: CryptoKey }
  close (): Promise<void>
}

async function newKey (alg: Alg): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg)
  const kid = randomUUID()
  return { kid, privateKey, publicJwk: { ...await exportJWK(publicKey), kid, alg, use: 'sig' } }
}

async function newKeys (): Promise<Record<Alg, SigningKey>> {
  const [rsa, ec] = await Promise.all([newKey('RS256'), newKey('ES256')])
  return { RS256: rsa, ES256: ec }
}

export async function startIdentityProvider (): Promise<IdentityProvider> {
  let keys = await newKeys()
  let mode: Mode = 'up'
  const requests = { jwks: 0, discovery: 0 }
  const sockets = new Set<Socket>()
  const paths = { discovery: '/tenant-guid/v2.0/.well-known/openid-configuration', jwks: '/tenant-guid/discovery/v2.0/keys' }

  const server = createServer((request, response) => {
    const route = request.url === paths.discovery ? 'discovery' : request.url === paths.jwks ? 'jwks' : undefined
    if (route) requests[route]++
    if (mode === 'hang') return
    const [status, body] = answer(route)
    response.writeHead(status, { 'content-type': 'application/json' })
    response.end(JSON.stringify(body))
  })
  function answer (route: keyof typeof requests | undefined): [number, unknown] {
    if (mode === 'down') return [503, { error: 'unavailable' }]
    if (route === 'discovery') return [200, { issuer, jwks_uri: jwksUrl }]
    if (route === 'jwks') return [200, { keys: [keys.RS256.publicJwk, keys.ES256.publicJwk] }]
    return [404, { error: 'not found' }]
  }
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const issuer = `${origin}/tenant-guid/v2.0`
  const jwksUrl = `${origin}${paths.jwks}`

  return {
    issuer,
    jwksUrl,
    requests,
    async sign (claims = {}, options = {}) {
      const alg = options.alg ?? 'RS256'
      const now = Math.floor(Date.now() / 1000)
      const payload: Record<string, unknown> = {
        iss: issuer, aud: 'api://conversation-store', exp: now + 3600, iat: now, azp: 'app-1', oid: randomUUID(), tid: 'tenant-guid', ver: '2.0', ...claims
      }
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name]
      return await new SignJWT(payload)
        .setProtectedHeader({ alg, typ: 'JWT', kid: options.kid ?? keys[alg].kid, ...options.header })
        .sign(keys[alg].privateKey)
    },
    async rotate () { keys = await newKeys() },
    setMode (next) { mode = next },
    currentKey (alg) { return { kid: keys[alg].kid, privateKey: keys[alg].privateKey } },
    async close () {
      // Hung requests would keep server.close() waiting forever.
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve, reject) => server.close((err) => err ? reject(err) : resolve()))
    }
  }
}
