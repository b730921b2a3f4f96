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
  /** Aborts the request, or the wait between tries: the call then rejects (not with a ConversationStoreError). */
  signal?: AbortSignal
}

export interface Answer {
  status: number
  headers: Headers
  body: unknown
}

export interface Transport {
  /** Throws ConversationStoreError for any status the call does not expect. */
  send: (call: Call) => Promise<Answer>
  /**
   * One try of a GET answered with server-sent events: the open stream on 200. Any other
   * answer throws ConversationStoreError, and so does a request without an answer
   * (NETWORK_ERROR); an abort rejects with the signal's reason. Retries are the caller's.
   */
  open: (path: string, headers: Record<string, string | undefined>, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>
  /** The longest wait between tries (ClientOptions.retry.maxDelayMs). */
  maxDelayMs: number
}

/** The transport bound to the options. */
export function createTransport (options: ClientOptions): Transport {
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
    if (call.signal !== undefined) init.signal = call.signal

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
        call.signal?.throwIfAborted()
        const error = new ConversationStoreError(`${call.method} ${call.path} failed: ${reason(cause)}`, { code: 'NETWORK_ERROR', cause })
        if (!call.retryable || attempt >= attempts) throw error
        await sleep(Math.min(backoff(attempt), maxDelayMs), undefined, { signal: call.signal })
        continue
      }
      const body = parseJson(text)
      if (call.expect.includes(response.status)) return { status: response.status, headers: response.headers, body }
      const error = errorFrom(response.status, response.headers, body)
      if (response.status !== 503 || !call.retryable || attempt >= attempts) throw error
      const waitMs = error.retryAfterSeconds === undefined ? backoff(attempt) : error.retryAfterSeconds * 1000
      await sleep(Math.min(waitMs, maxDelayMs), undefined, { signal: call.signal })
    }
  }

  async function open (path: string, extra: Record<string, string | undefined>, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    for (const [name, value] of Object.entries(extra)) if (value !== undefined) headers[name] = value
    const bearer = await authorization()
    if (bearer !== undefined) headers.authorization = bearer
    const failed = (cause: unknown): ConversationStoreError => {
      signal.throwIfAborted()
      return new ConversationStoreError(`GET ${path} failed: ${reason(cause)}`, { code: 'NETWORK_ERROR', cause })
    }
    const response = await fetchImpl(baseUrl + path, { method: 'GET', headers, signal }).catch((cause: unknown) => { throw failed(cause) })
    const type = response.headers.get('content-type') ?? ''
    if (response.status === 200 && response.body !== null && /^text\/event-stream\b/i.test(type)) return response.body
    const text = await response.text().catch((cause: unknown) => { throw failed(cause) })
    if (response.status !== 200) throw errorFrom(response.status, response.headers, parseJson(text))
    throw new ConversationStoreError(`GET ${path} answered ${type === '' ? 'no content type' : type}, not text/event-stream`, { code: 'INVALID_RESPONSE' })
  }

  return { send, open, maxDelayMs }
}
