import { parseArgs } from 'node:util'

// What the export and import commands share: their options, how they reach the service,
// and the progress they draw for an operator.

export interface Terminal {
  isTTY?: boolean
  write: (text: string) => unknown
}

export interface CliOptions {
  url: string
  user: string
  /** From CONVERSATION_STORE_API_KEY, never from the command line (it would show in ps and shell history). */
  apiKey?: string
  file?: string
  mode?: string
}

export class UsageError extends Error {
  override name = 'UsageError'
}

/** The options of `npm run export|import -- …`; `needs` names the ones the command requires. */
export function cliOptions (args: string[], env: NodeJS.ProcessEnv, needs: Array<'file'>): CliOptions {
  let values
  try {
    ({ values } = parseArgs({ args, options: { user: { type: 'string' }, file: { type: 'string' }, url: { type: 'string' }, mode: { type: 'string' } } }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.user === undefined) throw new UsageError('--user is required')
  for (const name of needs) if (values[name] === undefined) throw new UsageError(`--${name} is required`)
  const url = (values.url ?? env.CONVERSATION_STORE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const apiKey = env.CONVERSATION_STORE_API_KEY
  return {
    url,
    user: values.user,
    ...(apiKey === undefined || apiKey === '' ? {} : { apiKey }),
    ...(values.file === undefined ? {} : { file: values.file }),
    ...(values.mode === undefined ? {} : { mode: values.mode })
  }
}

export function userUrl (options: CliOptions, what: 'export' | 'import'): string {
  return `${options.url}/v1/users/${encodeURIComponent(options.user)}/${what}`
}

export function authorization (options: CliOptions): Record<string, string> {
  return options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }
}

/**
 * Progress on a terminal: redrawn in place, at most every 100 ms, with a bar when the total
 * is known. Elsewhere (a pipe, a log) nothing but the summary.
 */
export class Progress {
  readonly #terminal: Terminal
  readonly #total: number | undefined
  #drawnAt = 0

  constructor (terminal: Terminal, total?: number) {
    this.#terminal = terminal
    this.#total = total
  }

  update (bytes: number, conversations: number): void {
    if (this.#terminal.isTTY !== true || Date.now() - this.#drawnAt < 100) return
    this.#drawnAt = Date.now()
    this.#terminal.write(`\r${this.#bar(bytes)}${conversations} conversations, ${megabytes(bytes)}`)
  }

  done (summary: string): void {
    this.#terminal.write(`${this.#terminal.isTTY === true ? '\r\x1b[K' : ''}${summary}\n`)
  }

  #bar (bytes: number): string {
    if (this.#total === undefined || this.#total === 0) return ''
    const share = Math.min(1, bytes / this.#total)
    const filled = Math.round(share * 30)
    return `[${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${Math.floor(share * 100)}% `
  }
}

export const megabytes = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`

/** The service's error body as one line, for a failed request. */
export async function failureOf (response: Response): Promise<string> {
  const text = await response.text()
  try {
    const body = JSON.parse(text) as { code?: string, message?: string }
    return `${response.status} ${body.code ?? ''}: ${body.message ?? ''}`
  } catch {
    return `${response.status}`
  }
}
