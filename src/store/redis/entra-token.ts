import type { FastifyBaseLogger } from 'fastify'

// Microsoft Entra ID authentication for Azure Managed Redis: the password is an access
// token that lasts about 75 minutes, so it is refreshed before it expires, pushed to every
// open connection with AUTH, and used by every reconnect.

export interface AccessToken {
  token: string
  /** Milliseconds since the epoch. */
  expiresOnTimestamp: number
}

/** Where tokens come from; injected in tests, DefaultAzureCredential in production. */
export interface TokenSource {
  getToken: () => Promise<AccessToken>
}

const REDIS_SCOPE = 'https://redis.azure.com/.default'

export function defaultAzureTokenSource (): TokenSource {
  let credential: { getToken: (scope: string) => Promise<AccessToken | null> } | undefined
  return {
    async getToken () {
      // Loaded only when Entra authentication is configured.
      const { DefaultAzureCredential } = await import('@azure/identity')
      credential ??= new DefaultAzureCredential()
      const token = await credential.getToken(REDIS_SCOPE)
      if (token === null) throw new Error('DefaultAzureCredential returned no token')
      return token
    }
  }
}

export interface TokenRotationOptions {
  source: TokenSource
  /** Called with every new token: update the client options and AUTH the open connections. */
  apply: (token: string) => Promise<void>
  log: FastifyBaseLogger
  retryDelay: (attempt: number) => number
  random?: () => number
}

/**
 * Keeps a fresh token applied. Refreshes at 75–85% of the token's remaining life (jitter
 * spreads instances apart); on failure it logs and retries with backoff, never throwing.
 */
export class TokenRotation {
  readonly #options: TokenRotationOptions
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #stopped = false

  constructor (options: TokenRotationOptions) {
    this.#options = options
  }

  /** Gets and applies a token; true on success. Schedules the next refresh either way. */
  async refresh (): Promise<boolean> {
    const { source, apply, log, retryDelay, random = Math.random } = this.#options
    try {
      const { token, expiresOnTimestamp } = await source.getToken()
      await apply(token)
      this.#failures = 0
      const lifeMs = Math.max(0, expiresOnTimestamp - Date.now())
      this.#schedule(lifeMs * (0.75 + random() * 0.1))
      log.info({ expiresAt: new Date(expiresOnTimestamp).toISOString() }, '[STORE] Entra ID token refreshed')
      return true
    } catch (error) {
      this.#failures++
      log.error({ err: error, attempt: this.#failures }, '[STORE] could not get or apply a Microsoft Entra ID token for Redis')
      this.#schedule(retryDelay(this.#failures))
      return false
    }
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  #schedule (delayMs: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timer)
    // refresh() never rejects: it logs its failures and schedules a retry.
    this.#timer = setTimeout(() => { this.refresh().catch(() => {}) }, delayMs).unref()
  }
}
