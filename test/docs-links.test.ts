import { remark } from 'remark'
import remarkValidateLinks from 'remark-validate-links'
import t from 'tap'
import { engine } from 'unified-engine'

// Every relative link and anchor of the README, docs/ and bench/README.md resolves, checked
// by remark-validate-links across the files (offline: links to other hosts are not
// followed). A heading renamed or a page moved fails here, not in a reader's browser.

const PAGES = ['README.md', 'docs', 'bench/README.md']

interface Report { path: string, messages: Array<{ line?: number | undefined, reason: string }> }

async function check (files: string[]): Promise<Report[]> {
  return await new Promise((resolve, reject) => {
    engine({
      processor: remark(),
      files,
      extensions: ['md'],
      // By name: the engine loads the plugin from node_modules, as remark-cli would.
      plugins: [['remark-validate-links', { repository: false }]],
      out: false,
      quiet: true,
      silent: true,
      color: false
    }, (error, _code, context) => {
      if (error !== undefined && error !== null) reject(error)
      else resolve(context?.files ?? [])
    })
  })
}

t.test('every relative link and anchor in README.md, docs/ and bench/README.md resolves', async (t) => {
  const files = await check(PAGES)
  const names = files.map((file) => file.path)
  t.ok(names.includes('README.md') && names.includes('bench/README.md'), 'the README and bench/README.md were read')
  t.ok(names.filter((name) => name.startsWith('docs/')).length >= 9, `${names.length - 2} docs pages were read`)
  const broken = files.flatMap((file) => file.messages.map((message) => `${file.path}:${message.line ?? '?'}: ${message.reason}`))
  t.same(broken, [], 'no broken link')
})

t.test('the checker does find a broken link and a broken anchor', async (t) => {
  const processor = remark().use(remarkValidateLinks, { repository: false })
  const file = await processor.process({ path: 'README.md', cwd: process.cwd(), value: '# Here\n\n[a](#here) [b](#nowhere) [c](docs/missing.md)\n' })
  t.same(file.messages.map((message) => message.ruleId), ['missing-heading', 'missing-file'], 'both are reported')
})
