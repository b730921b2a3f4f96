import { performance } from 'node:perf_hooks'
import { conversation, messages } from './fixtures.js'
import { currentRss } from './processes.js'

// History and data (issue 22), per backend: the export of a user with 10,000 conversations
// of 20 messages (rate, and the service's resident memory while it streams), the import of
// that export into an empty service, and a fork of a 10,000-message conversation, against a
// GET of the same conversation (a fork reads it all and writes it all).

const USER_CONVERSATIONS = 10_000
const FORK_MESSAGES = 10_000
const FORKS = 10
const ndjson = { 'content-type': 'application/x-ndjson' }
const json = { 'content-type': 'application/json' }

/** The largest RSS of `pid` while `work` runs, sampled every 20 ms. */
async function peakDuring (pid, work) {
  let peak = await currentRss(pid)
  const sampler = setInterval(() => { currentRss(pid).then((rss) => { peak = Math.max(peak, rss) }, () => {}) }, 20)
  try {
    const result = await work()
    return { result, peak: Math.max(peak, await currentRss(pid)) }
  } finally {
    clearInterval(sampler)
  }
}

/** Reads an export to the end, as an operator's command does: bytes and lines. */
async function readExport (url, userId) {
  const response = await fetch(`${url}/v1/users/${userId}/export`)
  let bytes = 0
  let tail = ''
  const chunks = []
  for await (const chunk of response.body) {
    bytes += chunk.length
    chunks.push(chunk)
    tail = (tail + Buffer.from(chunk).toString('utf8')).slice(-100)
  }
  const end = JSON.parse(tail.trim().split('\n').at(-1))
  return { bytes, conversations: end.conversations, body: Buffer.concat(chunks) }
}

const mib = (bytes) => Math.round(bytes / 2 ** 20 * 10) / 10
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/**
 * `service` and `empty` are two running services of one backend; `seed(url, count, body)`
 * creates conversations through the API.
 */
export async function historyRows ({ backend, service, empty, seed }) {
  const userId = `export-user-${backend}`
  process.stderr.write(`seeding a user with ${USER_CONVERSATIONS} conversations (${backend})\n`)
  const fixture = conversation(userId)
  await seed(service.url, USER_CONVERSATIONS, (i) => ({ ...fixture, id: `x-${backend}-${i}` }))
  const before = await currentRss(service.pid)
  const started = performance.now()
  const { result: exported, peak } = await peakDuring(service.pid, () => readExport(service.url, userId))
  const exportSeconds = (performance.now() - started) / 1000

  const importStarted = performance.now()
  const { result: imported, peak: importPeak } = await peakDuring(empty.pid, async () =>
    await (await fetch(`${empty.url}/v1/users/${userId}/import`, { method: 'POST', headers: ndjson, body: exported.body })).json())
  const importSeconds = (performance.now() - importStarted) / 1000

  // A 10,000-message conversation, written in one import line (a create would pass the body limit).
  const source = `fork-source-${backend}`
  const line = JSON.stringify({ type: 'conversation', conversation: { id: source, userId, messages: messages(FORK_MESSAGES) } })
  await fetch(`${service.url}/v1/users/${userId}/import`, { method: 'POST', headers: ndjson, body: line })
  const forkMs = []
  const getMs = []
  for (let i = 0; i < FORKS; i++) {
    let at = performance.now()
    const fork = await fetch(`${service.url}/v1/conversations/${source}/fork`, { method: 'POST', headers: json, body: JSON.stringify({ id: `${source}-fork-${i}` }) })
    await fork.arrayBuffer()
    if (fork.status !== 201) throw new Error(`fork answered ${fork.status}`)
    forkMs.push(performance.now() - at)
    at = performance.now()
    await (await fetch(`${service.url}/v1/conversations/${source}`)).arrayBuffer()
    getMs.push(performance.now() - at)
  }
  const row = {
    backend,
    conversations: exported.conversations,
    exportMiB: mib(exported.bytes),
    exportPerSecond: Math.round(exported.conversations / exportSeconds),
    exportMiBPerSecond: Math.round(mib(exported.bytes) / exportSeconds * 10) / 10,
    rssBeforeExportMiB: mib(before),
    peakRssDuringExportMiB: mib(peak),
    rssGrowthDuringExportMiB: mib(peak - before),
    imported: imported.imported,
    importPerSecond: Math.round(imported.imported / importSeconds),
    peakRssDuringImportMiB: mib(importPeak),
    forkMs: Math.round(median(forkMs)),
    forkMaxMs: Math.round(Math.max(...forkMs)),
    getMs: Math.round(median(getMs)),
    forkAgainstGet: Math.round(median(forkMs) / median(getMs) * 100) / 100
  }
  process.stderr.write(`  history, ${backend}: ${JSON.stringify(row)}\n`)
  return row
}
