import { readFile } from 'node:fs/promises'

// node bench/profile-summary.js <file.cpuprofile> [top]: self time by function, self time
// by package, and the time of each function of the service's plugins and routes (and of the
// packages behind its hooks) with what it calls: each hook's whole cost.

const [file, top = '25'] = process.argv.slice(2)
const profile = JSON.parse(await readFile(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfTime = new Map()
const intervals = profile.timeDeltas
const total = intervals.reduce((sum, delta) => sum + delta, 0)
profile.samples.forEach((id, i) => {
  const node = byId.get(id)
  const { functionName, url, lineNumber } = node.callFrame
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules\/)?/, '')}:${lineNumber + 1}`
  selfTime.set(key, (selfTime.get(key) ?? 0) + (intervals[i] ?? 0))
})
const rows = [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, Number(top))
for (const [key, time] of rows) process.stdout.write(`${(100 * time / total).toFixed(1).padStart(5)} %  ${key}\n`)

// Self time by where the code lives: a package, the service's own files, or the runtime.
const byPlace = new Map()
profile.samples.forEach((id, i) => {
  const { url, functionName } = byId.get(id).callFrame
  const place = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? /\/(dist\/[^/]+)\//.exec(url)?.[1] ??
    (url === '' ? (functionName.startsWith('(') ? functionName : '(native)') : url.startsWith('node:') ? 'node:*' : url)
  byPlace.set(place, (byPlace.get(place) ?? 0) + (intervals[i] ?? 0))
})
process.stdout.write('\nby place:\n')
for (const [place, time] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  process.stdout.write(`${(100 * time / total).toFixed(1).padStart(5)} %  ${place}\n`)
}

// The time of each function of plugins/ and routes/, and of the load shedding and rate
// limit packages, with what it calls: each sample counts for the innermost such function on
// its stack. (A callback hook's done() runs the next hook and the route inside it, so a
// plain total would count the rest of the request under the first hook.)
const parentOf = new Map()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
const hookTime = new Map()
profile.samples.forEach((id, i) => {
  for (let at = id; at !== undefined; at = parentOf.get(at)) {
    const { functionName, url, lineNumber } = byId.get(at).callFrame
    const file = /\/dist\/((plugins|routes)\/[^/]+)$/.exec(url)?.[1] ?? /node_modules\/(@fastify\/(under-pressure|rate-limit)\/.*)$/.exec(url)?.[1]
    if (file === undefined) continue
    const key = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`
    hookTime.set(key, (hookTime.get(key) ?? 0) + (intervals[i] ?? 0))
    break
  }
})
process.stdout.write('\nthe plugins\', hooks\' and routes\' functions, each with what it calls but not the next one:\n')
for (const [key, time] of [...hookTime].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
  process.stdout.write(`${(100 * time / total).toFixed(1).padStart(5)} %  ${key}\n`)
}
