import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { authorization, cliOptions, failureOf, Progress, userUrl, type Terminal } from './user-data-cli.js'

/**
 * `npm run import -- --user U --file F [--mode skip|replace] [--url URL]`: streams F to the
 * import route and prints its answer; lines the service could not import are listed.
 * Answers the exit code: 0 when every line was imported or skipped.
 */
export async function importUser (args: string[], env: NodeJS.ProcessEnv, terminal: Terminal): Promise<number> {
  const options = cliOptions(args, env, ['file'])
  const file = options.file as string
  const { size } = await stat(file)
  const progress = new Progress(terminal, size)
  let sent = 0
  const body = createReadStream(file).on('data', (chunk) => {
    sent += chunk.length
    progress.update(sent, 0)
  })
  const query = options.mode === undefined ? '' : `?mode=${encodeURIComponent(options.mode)}`
  const response = await fetch(userUrl(options, 'import') + query, {
    method: 'POST',
    headers: { ...authorization(options), 'content-type': 'application/x-ndjson', 'content-length': String(size) },
    body: Readable.toWeb(body) as ReadableStream,
    duplex: 'half'
  } as RequestInit)
  if (!response.ok) {
    progress.done(`import failed: ${await failureOf(response)}`)
    return 1
  }
  const result = await response.json() as { imported: number, skipped: number, failed: Array<{ line: number, code: string, message: string }>, failedCount: number }
  for (const failure of result.failed) terminal.write(`line ${failure.line}: ${failure.code}: ${failure.message}\n`)
  progress.done(`imported ${result.imported}, skipped ${result.skipped}, failed ${result.failedCount}`)
  return result.failedCount === 0 ? 0 : 1
}
