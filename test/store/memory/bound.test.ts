import { spawn } from 'node:child_process'
import t from 'tap'

// The memory backend alone never drives the process into load shedding: with a small heap
// and the default MEMORY_MAX_BYTES, writing four times that bound in large conversations
// evicts the least recently used ones, and every create, read and health check still
// succeeds. The child process has the heap limit; it loads TypeScript with this process's own flags (tap's loaders).

t.test('four times MEMORY_MAX_BYTES of conversations in a 256 MB heap: all 201 and 200, never 503', { timeout: 120_000 }, async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, '--max-old-space-size=256', 'test/helpers/memory-bound-child.ts'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0, 'the child finished')
  const report = JSON.parse(output)
  t.comment(`wrote ${Math.round(report.written / 2 ** 20)} MiB in ${report.created} conversations; bound ${Math.round(report.maxBytes / 2 ** 20)} MiB; ` +
    `kept ${Math.round(report.bytes / 2 ** 20)} MiB in ${report.conversations} after ${report.evictions} evictions; ` +
    `peak heap ${Math.round(report.peakHeapUsed / 2 ** 20)} of ${Math.round(report.heapLimit / 2 ** 20)} MiB`)
  t.ok(report.maxBytes <= report.heapLimit / 4, 'the default bound stays well under the heap limit')
  t.ok(report.written >= report.maxBytes * 4, 'four times the bound was written')
  t.same(Object.keys(report.statuses).sort(), ['200', '201'], `only 200 and 201: ${JSON.stringify(report.statuses)}`)
  t.same(report.last, [201, 200, 200], 'and the last create, read and health check succeed')
  t.ok(report.bytes <= report.maxBytes, 'the stored size stays within the bound')
  t.ok(report.evictions > 0, 'by evicting the least recently used conversations')
  t.ok(report.peakHeapUsed < report.heapLimit * 0.9, 'the heap stays below the load-shedding threshold')
})
