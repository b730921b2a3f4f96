import { createLocalJWKSet, errors, jwtVerify, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type JWTPayload, type LocalJWKSet } from 'jose'

export interface JwtVerifierOptions {
  /** The exact `iss` to require. */
  issuer: string
  /** Accepted `aud` values. */
  audiences: string[]
  /** Default: the jwks_uri of `${issuer}/.well-known/openid-configuration`, discovered on first use. */
  jwksUrl?: string
  /** Bound on every fetch of the discovery document or the key set. */
  timeoutMs: number
  /** Default 30 s: at most one fetch attempt per this period. */
  refetchCooldownMs?: number
  /** Default 10 min: how long a fetched key set counts as fresh. */
  cacheMaxAgeMs?: number
}

export interface VerifiedToken {
  /** azp (v2 tokens) or appid (v1): the client app that got the token. */
  appId: string
  /** True when the token carries `scp` (a user signed in through the app: delegated). */
  delegated: boolean
  /** The `oid` claim, when present (the user for delegated tokens, the service principal otherwise). */
  objectId?: string
  /** `tid`, when present. */
  tenantId?: string
}

/** The token is not acceptable. The message says why and never contains the token. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError'
}

/** The signing keys could not be fetched and no cached key fits the token. */
export class IdentityProviderUnavailableError extends Error {
  override name = 'IdentityProviderUnavailableError'
}

async function fetchJson (url: string, timeoutMs: number): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (!response.ok) {
    await response.body?.cancel()
    throw new Error(`${url} answered HTTP ${response.status}`)
  }
  return await response.json()
}

/**
 * Every fetch attempt (discovery and JWKS, whatever triggered it) is rate limited to one per
 * refetch cooldown, so an outage or a flood of unknown kids cannot make each request wait on the
 * identity provider. Within the cooldown the outcome of the last attempt stands: after a success
 * an unknown kid is simply invalid; after a failure it is IdentityProviderUnavailableError.
 */
function createKeyResolver (options: JwtVerifierOptions) {
  const { timeoutMs, refetchCooldownMs = 30_000, cacheMaxAgeMs = 600_000 } = options
  let jwksUrl = options.jwksUrl
  let keys: LocalJWKSet | undefined // the last key set fetched successfully
  let fetchedAt = -Infinity
  let lastAttempt = -Infinity
  let lastFailure: IdentityProviderUnavailableError | undefined
  let inflight: Promise<void> | undefined

  async function load (): Promise<LocalJWKSet> {
    if (jwksUrl === undefined) {
      const discovery = await fetchJson(`${options.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, timeoutMs)
      const uri = (discovery as { jwks_uri?: unknown } | null)?.jwks_uri
      if (typeof uri !== 'string') throw new Error('the discovery document has no jwks_uri')
      jwksUrl = uri // cached only once discovery succeeded
    }
    return createLocalJWKSet(await fetchJson(jwksUrl, timeoutMs) as JSONWebKeySet)
  }

  function refresh (): Promise<void> {
    if (inflight) return inflight // concurrent callers share one fetch
    if (performance.now() - lastAttempt < refetchCooldownMs) {
      return lastFailure ? Promise.reject(lastFailure) : Promise.resolve()
    }
    lastAttempt = performance.now()
    inflight = load().then((loaded) => {
      keys = loaded
      fetchedAt = performance.now()
      lastFailure = undefined
    }, (cause: unknown) => {
      lastFailure = new IdentityProviderUnavailableError('could not fetch the identity provider signing keys', { cause })
      throw lastFailure
    }).finally(() => { inflight = undefined })
    return inflight
  }

  // jwtVerify calls this only once the header parsed and its alg is allowed.
  return async function getKey (header: JWSHeaderParameters, token: FlattenedJWSInput) {
    let reloadFailure: unknown
    if (!keys || performance.now() - fetchedAt >= cacheMaxAgeMs) {
      // A failed reload is not fatal while the last known set still has the token's key.
      await refresh().catch((err: unknown) => { reloadFailure = err })
    }
    if (!keys) throw reloadFailure
    try {
      return await keys(header, token)
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err
    }
    // Unknown kid: the keys may have rotated. Within the cooldown this repeats the last outcome.
    await refresh()
    return await keys(header, token)
  }
}

function describe (err: errors.JOSEError): string {
  // Codes and claim names only: jose messages can quote header values chosen by the caller.
  const claim = err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTExpired ? ` (${err.claim}: ${err.reason})` : ''
  return `invalid token: ${err.code}${claim}`
}

export function createJwtVerifier (options: JwtVerifierOptions): { verify (token: string): Promise<VerifiedToken> } {
  const getKey = createKeyResolver(options)
  const verifyOptions = {
    algorithms: ['RS256', 'ES256'],
    issuer: options.issuer,
    audience: options.audiences,
    clockTolerance: 60,
    requiredClaims: ['exp']
  }
  return {
    async verify (token) {
      let payload: JWTPayload
      try {
        ({ payload } = await jwtVerify(token, getKey, verifyOptions))
      } catch (err) {
        throw err instanceof errors.JOSEError ? new InvalidTokenError(describe(err)) : err
      }
      const appId = payload.azp ?? payload.appid
      if (typeof appId !== 'string' || appId === '') throw new InvalidTokenError('invalid token: it has neither azp nor appid')
      const verified: VerifiedToken = { appId, delegated: payload.scp !== undefined }
      if (typeof payload.oid === 'string') verified.objectId = payload.oid
      if (typeof payload.tid === 'string') verified.tenantId = payload.tid
      return verified
    }
  }
}
