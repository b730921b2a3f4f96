import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { authorization, cliOptions, failureOf, megabytes, Progress, userUrl, type Terminal } from './user-data-cli.js'

/**
 * `npm run export -- --user U [--file F] [--url URL]`: writes the user's export to F
 * (`<user>.ndjson` by default), and fails unless it ends with the service's end line, so
 * that a cut export is never taken for a whole one. Answers the exit code.
 */
export async function exportUser (args: string[], env: NodeJS.ProcessEnv, terminal: Terminal): Promise<number> {
  const options = cliOptions(args, env, [])
  const file = options.file ?? `${options.user}.ndjson`
  const response = await fetch(userUrl(options, 'export'), { headers: authorization(options) })
  if (!response.ok || response.body === null) {
    terminal.write(`export failed: ${await failureOf(response)}\n`)
    return 1
  }
  const out = createWriteStream(file)
  const progress = new Progress(terminal)
  let bytes = 0
  let lines = 0
  let last = ''
  for await (const chunk of response.body) {
    bytes += chunk.length
    const text = Buffer.from(chunk).toString('utf8')
    lines += text.split('\n').length - 1
    last = (last + text).slice(-200)
    // Backpressure: the file is written no faster than the disk takes it.
    if (!out.write(chunk)) await once(out, 'drain')
    progress.update(bytes, lines)
  }
  out.end()
  await once(out, 'finish')
  const end = /\{"type":"end","conversations":(\d+)\}\n$/.exec(last)
  if (end === null) {
    progress.done(`export cut short after ${megabytes(bytes)}: ${file} is incomplete`)
    return 1
  }
  progress.done(`exported ${end[1] as string} conversations (${megabytes(bytes)}) to ${file}`)
  return 0
}
