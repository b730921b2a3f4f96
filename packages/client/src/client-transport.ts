import { setTimeout as sleep } from 'node:timers/promises'
import { backoff, ConversationStoreError, errorFrom, parseJson, reason } from './client-answers.js'
import type { ClientOptions } from './client-types.js'

// The client's one way to the service: URL, headers, bearer token, and the retries of
// ClientOptions.retry. The methods (client.ts) say what to send and what they expect.

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface Call {
  method: Method
  path: string
  query?: URLSearchParams
  body?: unknown
  contentType?: string
  headers?: Record<string, string | undefined>
  /** Statuses the method handles itself; any other is an error. */
  expect: number[]
  retryable: boolean
}

export interface Answer {
  status: number
  headers: Headers
  body: unknown
}

/** A `send` bound to the options: throws ConversationStoreError for any status the call does not expect. */
export function createTransport (options: ClientOptions): (call: Call) => Promise<Answer> {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  const fetchImpl = options.fetch ?? globalThis.fetch
  // `|| 1` also turns NaN into a single try rather than an endless loop.
  const attempts = Math.max(1, Math.floor(options.retry?.attempts ?? 1) || 1)
  const maxDelayMs = options.retry?.maxDelayMs ?? 10_000
  if (options.apiKey !== undefined && options.getToken !== undefined) throw new TypeError('Pass apiKey or getToken, not both')
  const { apiKey, getToken } = options
  const authorization = getToken !== undefined
    ? async () => `Bearer ${await getToken()}`
    : async () => apiKey === undefined ? undefined : `Bearer ${apiKey}`

  async function send (call: Call): Promise<Answer> {
    const query = call.query?.toString() ?? ''
    const url = baseUrl + call.path + (query === '' ? '' : `?${query}`)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (call.body !== undefined) headers['content-type'] = call.contentType ?? 'application/json'
    for (const [name, value] of Object.entries(call.headers ?? {})) if (value !== undefined) headers[name] = value
    const init: RequestInit = { method: call.method, headers }
    if (call.body !== undefined) init.body = JSON.stringify(call.body)

    for (let attempt = 1; ; attempt++) {
      let response: Response
      let text: string
      const bearer = await authorization()
      if (bearer !== undefined) headers.authorization = bearer
      try {
        response = await fetchImpl(url, init)
        // Reading the body is part of the exchange: a reset here is a network error too.
        text = await response.text()
      } catch (cause) {
        const error = new ConversationStoreError(`${call.method} ${call.path} failed: ${reason(cause)}`, { code: 'NETWORK_ERROR', cause })
        if (!call.retryable || attempt >= attempts) throw error
        await sleep(Math.min(backoff(attempt), maxDelayMs))
        continue
      }
      const body = parseJson(text)
      if (call.expect.includes(response.status)) return { status: response.status, headers: response.headers, body }
      const error = errorFrom(response.status, response.headers, body)
      if (response.status !== 503 || !call.retryable || attempt >= attempts) throw error
      const waitMs = error.retryAfterSeconds === undefined ? backoff(attempt) : error.retryAfterSeconds * 1000
      await sleep(Math.min(waitMs, maxDelayMs))
    }
  }

  return send
}
