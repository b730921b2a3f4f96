import autocannon from 'autocannon'
import { loadTokenCounter } from '../dist/src/tokens.js'
import { messages } from './fixtures.js'

// The cost rows of messages as a resource: a page of 20 from a 10,000-message conversation
// against one from a 20-message conversation, a tail read, and a context window, per
// backend; appends that answer a window, at both sizes; and what counting tokens adds to an append.

const SHORT = 200
const LONG = 20
const json = { 'content-type': 'application/json' }
const pick = (count) => Math.floor(Math.random() * count)

/** Seeds 20-message and 10,000-message conversations (appends of 100, within the body limit). */
async function seedConversations (url, backend) {
  const creates = [
    ...Array.from({ length: SHORT }, (_, i) => ({ id: `p20-${i}`, userId: 'pages', messages: messages(20) })),
    ...Array.from({ length: LONG }, (_, i) => ({ id: `p10k-${i}`, userId: 'pages', messages: messages(100) }))
  ]
  await run(url, creates.map((body) => ({ method: 'POST', path: '/v1/conversations', body })))
  const appends = []
  for (let batch = 1; batch < 100; batch++) {
    for (let i = 0; i < LONG; i++) {
      appends.push({ method: 'POST', path: `/v1/conversations/p10k-${i}/messages`, body: { messages: messages(100, `b${batch}-`) } })
    }
  }
  process.stderr.write(`seeding ${SHORT} conversations of 20 and ${LONG} of 10,000 messages (${backend})\n`)
  await run(url, appends)
}

async function run (url, requests) {
  let next = 0
  const result = await autocannon({
    url,
    connections: 16,
    amount: requests.length,
    requests: [{ method: 'POST', headers: json, setupRequest: (request) => { const r = requests[next++]; return { ...request, method: r.method, path: r.path, body: JSON.stringify(r.body) } } }]
  })
  if (result.non2xx + result.errors > 0) throw new Error(`seeding failed: ${result.non2xx} non-2xx, ${result.errors} errors`)
}

const on = (prefix, count, query) => [{ method: 'GET', setupRequest: (request) => ({ ...request, path: `/v1/conversations/${prefix}-${pick(count)}${query}` }) }]

// The window rows compare conversations of 20 and of 10,000 messages whose 2,000-token
// windows are alike: each conversation first gets WINDOW_TURNS turns of about 150 tokens
// (more than a window holds), and each append adds one more such turn. The window is then
// the same dozen turns at both lengths, so the rows differ only in the conversation's length.
const TURN_TEXT = 'a user turn of about one hundred and fifty tokens, as a chat assistant gets them: '.repeat(8)
const WINDOW_TURNS = 16
let appended = 0
const turn = () => ({ id: `w${appended++}`, role: 'user', text: TURN_TEXT })

async function seedWindowTurns (url) {
  const ids = [...Array.from({ length: SHORT }, (_, i) => `p20-${i}`), ...Array.from({ length: LONG }, (_, i) => `p10k-${i}`)]
  await run(url, ids.map((id) => ({ method: 'POST', path: `/v1/conversations/${id}/messages`, body: { messages: Array.from({ length: WINDOW_TURNS }, turn) } })))
}

/** Appends of one turn that also answer the context window of 2,000 tokens after them. */
const windowAppends = (prefix, count) => [{
  method: 'POST',
  headers: json,
  setupRequest: (request) => ({
    ...request,
    path: `/v1/conversations/${prefix}-${pick(count)}/messages?window=2000`,
    body: JSON.stringify({ messages: [turn()] })
  })
}]

/** Adds the rows for one backend and answers them by name. */
export async function messageRows (url, backend, load) {
  await seedConversations(url, backend)
  const rows = {
    page20: await load(`8. page of 20 (desc), 20-message conversations, ${backend}`, url, on('p20', SHORT, '/messages?order=desc&limit=20')),
    page10k: await load(`8. page of 20 (desc), 10,000-message conversations, ${backend}`, url, on('p10k', LONG, '/messages?order=desc&limit=20')),
    tail10k: await load(`8. GET ?lastMessages=20, 10,000-message conversations, ${backend}`, url, on('p10k', LONG, '?lastMessages=20')),
    window10k: await load(`8. context window maxTokens=2000, 10,000-message conversations, ${backend}`, url, on('p10k', LONG, '/messages?order=desc&maxTokens=2000'))
  }
  await seedWindowTurns(url)
  rows.windowAppend20 = await load(`8. append of a turn with ?window=2000, 20-message conversations, ${backend}`, url, windowAppends('p20', SHORT))
  rows.windowAppend10k = await load(`8. append of a turn with ?window=2000, 10,000-message conversations, ${backend}`, url, windowAppends('p10k', LONG))
  return rows
}

/** Microseconds that counting tokens adds to each appended fixture message (o200k_base). */
export async function tokenCountingMicros () {
  const countTokens = await loadTokenCounter('o200k_base')
  const sample = messages(1000)
  for (const message of sample) countTokens(message)
  const started = performance.now()
  for (let round = 0; round < 10; round++) for (const message of sample) countTokens(message)
  return Math.round(((performance.now() - started) * 1000) / (10 * sample.length) * 10) / 10
}
