import { createServer } from 'node:http'
import { mkdtempSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { exportUser } from '../src/cli/export.js'
import { importUser } from '../src/cli/import.js'
import { build } from './helpers/build.js'
import { compiledService } from './helpers/compiled-service.js'
import { runCommand, serviceEnv, spawnProcess } from './helpers/process.js'

// The operators' commands, `npm run export` and `npm run import`, against a listening
// service: the export's file, the import's report, the exit codes, and the progress drawn
// on a terminal (and only there).

const API_KEY = 'cli-test-key'
const folder = mkdtempSync(join(tmpdir(), 'cli-'))

class Terminal {
  text = ''
  constructor (readonly isTTY: boolean) {}
  write (chunk: string): void { this.text += chunk }
}

async function listening (t: Parameters<typeof build>[0]): Promise<string> {
  const app = await build(t, { API_KEYS: API_KEY })
  return await app.listen({ host: '127.0.0.1', port: 0 })
}

const env = (url: string, key = API_KEY): NodeJS.ProcessEnv => ({ CONVERSATION_STORE_URL: url, CONVERSATION_STORE_API_KEY: key })

t.test('export to a file, then import it into another service', async (t) => {
  const from = await listening(t)
  const to = await listening(t)
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }
  for (let i = 0; i < 30; i++) {
    await fetch(`${from}/v1/conversations`, { method: 'POST', headers, body: JSON.stringify({ id: `cli-${i}`, userId: 'cli-user', messages: [{ id: 'm', role: 'user', text: `hello ${i}` }] }) })
  }
  const file = join(folder, 'cli-user.ndjson')
  const exportTerminal = new Terminal(true)
  t.equal(await exportUser(['--user', 'cli-user', '--file', file], env(from), exportTerminal), 0)
  const lines = (await readFile(file, 'utf8')).trim().split('\n').map((line) => JSON.parse(line))
  t.equal(lines.length, 31)
  t.same(lines.at(-1), { type: 'end', conversations: 30 })
  t.match(exportTerminal.text, /exported 30 conversations \(0\.0 MB\) to .*cli-user\.ndjson\n$/)
  t.notOk(exportTerminal.text.includes(API_KEY), 'the key is never printed')

  const importTerminal = new Terminal(true)
  t.equal(await importUser(['--user', 'cli-user', '--file', file], env(to), importTerminal), 0)
  t.match(importTerminal.text, /\[#+\] 100% .*imported 30, skipped 0, failed 0\n$/s, 'a bar on a terminal, then the summary')
  const again = new Terminal(false)
  t.equal(await importUser(['--user', 'cli-user', '--file', file, '--mode', 'skip'], env(to), again), 0)
  t.equal(again.text, 'imported 0, skipped 30, failed 0\n', 'no progress off a terminal')
  const listed = await (await fetch(`${to}/v1/users/cli-user/conversations?view=summary&limit=100`, { headers })).json() as { items: unknown[] }
  t.equal(listed.items.length, 30)
})

t.test('failures give a non-zero exit code and say why', async (t) => {
  const url = await listening(t)
  const file = join(folder, 'bad.ndjson')
  await writeFile(file, '{"type":"conversation","conversation":{"id":"ok","userId":"u"}}\nnot json\n')
  const terminal = new Terminal(false)
  t.equal(await importUser(['--user', 'u', '--file', file], env(url), terminal), 1)
  t.match(terminal.text, /^line 2: FST_ERR_VALIDATION: line is not JSON\nimported 1, skipped 0, failed 1\n$/)
  const refused = new Terminal(false)
  t.equal(await exportUser(['--user', 'u', '--file', join(folder, 'x.ndjson')], env(url, 'wrong-key'), refused), 1)
  t.match(refused.text, /^export failed: 401 UNAUTHORIZED/)
  const badMode = new Terminal(false)
  t.equal(await importUser(['--user', 'u', '--file', file, '--mode', 'merge'], env(url), badMode), 1)
  t.match(badMode.text, /import failed: 400 FST_ERR_VALIDATION/)
  await t.rejects(exportUser([], env(url), new Terminal(false)), { name: 'UsageError', message: '--user is required' })
  await t.rejects(importUser(['--user', 'u'], env(url), new Terminal(false)), { message: '--file is required' })
  await t.rejects(importUser(['--user', 'u', '--bogus'], env(url), new Terminal(false)), { name: 'UsageError' })
})

t.test('an export cut short is reported as incomplete', async (t) => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/x-ndjson' })
    response.end('{"type":"conversation","conversation":{}}\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const terminal = new Terminal(false)
  t.equal(await exportUser(['--user', 'u', '--file', join(folder, 'cut.ndjson'), '--url', `http://127.0.0.1:${port}`], {}, terminal), 1)
  t.match(terminal.text, /export cut short after 0\.0 MB: .*cut\.ndjson is incomplete/)
})

t.test('the compiled command, as npm run export and import start it', async (t) => {
  const [, , server] = await compiledService(t, 'cli')
  const main = join(dirname(server as string), 'cli', 'main.js')
  const url = await listening(t)
  const file = join(folder, 'compiled.ndjson')
  const exported = spawnProcess(process.execPath, [main, 'export', '--user', 'nobody', '--file', file], { env: serviceEnv(env(url)) })
  t.equal((await exported.exited).code, 0, exported.stderr)
  t.match(exported.stderr, /exported 0 conversations/)
  const imported = await runCommand(process.execPath, [main, 'import', '--user', 'nobody', '--file', file], { env: serviceEnv(env(url)) })
  t.match(imported.stderr, /imported 0, skipped 0, failed 0/)
  const usage = spawnProcess(process.execPath, [main, 'dance'], { env: serviceEnv() })
  t.equal((await usage.exited).code, 2)
  t.match(usage.stderr, /^usage: main\.js export\|import/)
  const unreachable = spawnProcess(process.execPath, [main, 'export', '--user', 'u', '--file', file, '--url', 'http://127.0.0.1:9'], { env: serviceEnv() })
  t.equal((await unreachable.exited).code, 2)
  t.match(unreachable.stderr, /^failed: fetch failed/)
})
