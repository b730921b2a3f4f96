import { readFile } from 'node:fs/promises'
import t from 'tap'
import { compiledService } from './helpers/compiled-service.js'
import { freePort, killProcess, runCommand, serviceEnv, spawnProcess, waitForHttp } from './helpers/process.js'

// The README's first conversation, run as a reader would: the compiled service with its
// default settings, and each `curl` of the walk-through as written, through a shell. Each
// answer must hold what the README shows after the command (the README shows only stable
// fields: no times, no tags).

interface Step { command: string, shown: unknown }

/** The ```sh / ```json pairs of the README's "A first conversation" section. */
function walkThrough (readme: string): Step[] {
  const section = /^## A first conversation\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1]
  if (section === undefined) throw new Error('the README has no "## A first conversation" section')
  const blocks = [...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map(([, lang, body]) => ({ lang, body: (body as string).trim() }))
  const steps: Step[] = []
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i] as { lang: string, body: string }
    if (block.lang !== 'sh') continue
    const answer = blocks[i + 1]
    if (answer?.lang !== 'json') throw new Error(`no json answer after: ${block.body}`)
    steps.push({ command: block.body, shown: JSON.parse(answer.body) })
  }
  return steps
}

const readme = await readFile('README.md', 'utf8')
const steps = walkThrough(readme)
const serviceArgs = await compiledService(t, 'walkthrough')

t.test("the README's first conversation runs against the compiled service and answers what it shows", async (t) => {
  t.ok(steps.length >= 5, `${steps.length} steps`)
  for (const { command } of steps) t.match(command, /^curl -s [^\n]*http:\/\/localhost:8080\/[^\n]*$/, 'one curl, on one line, to the default port')

  const port = await freePort()
  // The defaults of `npm start`, but on a free port: PORT is the only setting changed.
  const proc = spawnProcess(process.execPath, serviceArgs, { env: serviceEnv({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' }) })
  t.teardown(async () => { await killProcess(proc) })
  await waitForHttp(`http://127.0.0.1:${port}/health/live`, { timeoutMs: 20_000, process: proc })

  for (const { command, shown } of steps) {
    const run = await runCommand('bash', ['-c', command.replaceAll('http://localhost:8080', `http://127.0.0.1:${port}`)])
    const answer = JSON.parse(run.stdout) as unknown
    t.match(answer, shown, command)
  }
})
