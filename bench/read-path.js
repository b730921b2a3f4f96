import { Redis } from 'ioredis'
import { conversation } from './fixtures.js'
import { startBenchServer } from './processes.js'

// The read-path rows (issue 11): the plain design (bench/plain-server.js) and the Redis
// round-trip limit (bench/round-trip-server.js) beside the service, on the same Redis and
// the same data: GETs, lists of 50 full conversations, and chat turns.

const LIST_USER = 'list-full'
const CHAT_POOL = 200
const json = { 'content-type': 'application/json' }
const pick = (count) => Math.floor(Math.random() * count)

/** Starts both peers on `redisUrl` and gives them the service's POOL conversations `c-<i>`. */
export async function startPeers ({ redisUrl, serviceUrl, pool, seed }) {
  const plain = await startBenchServer('plain-server.js', { REDIS_URL: redisUrl })
  const roundTrip = await startBenchServer('round-trip-server.js', { REDIS_URL: redisUrl })
  const fixture = conversation('bench-user')
  await seed(plain.url, pool, (i) => ({ ...fixture, id: `c-${i}` }))
  // The round-trip route sends stored bytes: those of the service's own answer.
  const redis = new Redis(redisUrl)
  try {
    for (let i = 0; i < pool; i += 100) {
      const ids = Array.from({ length: Math.min(100, pool - i) }, (_, j) => `c-${i + j}`)
      const bodies = await Promise.all(ids.map(async (id) => await (await fetch(`${serviceUrl}/v1/conversations/${id}`)).text()))
      await redis.mset(...ids.flatMap((id, j) => [`bare:conv:${id}`, bodies[j]]))
    }
  } finally {
    await redis.quit()
  }
  return { plain, roundTrip, stop: async () => { await plain.stop(); await roundTrip.stop() } }
}

/** Lists of 50 full conversations and of 50 summaries, and chat turns, on both designs. */
export async function readPathRows ({ serviceUrl, plainUrl, seed, load }) {
  const fixture = conversation(LIST_USER)
  process.stderr.write(`seeding ${LIST_USER} (100 conversations of 20 messages) and ${CHAT_POOL} chats, on both designs\n`)
  for (const url of [serviceUrl, plainUrl]) {
    await seed(url, 100, (i) => ({ ...fixture, id: `lf-${i}` }))
    await seed(url, CHAT_POOL, (i) => ({ ...conversation(`chat-user-${i}`), id: `chat-${i}` }))
  }
  // The one-request turn has chats of its own, so that each row counts its own appends.
  await seed(serviceUrl, CHAT_POOL, (i) => ({ ...conversation(`chat-user-${i}`), id: `wchat-${i}` }))
  const path = `/v1/users/${LIST_USER}/conversations?limit=50`
  const rows = {
    listFull: await load('9. list 50 full conversations, Redis', serviceUrl, [{ method: 'GET', path }]),
    plainListFull: await load('9. list 50 full conversations, plain design', plainUrl, [{ method: 'GET', path }]),
    listSummaries: await load('9. list 50 summaries (same user), Redis', serviceUrl, [{ method: 'GET', path: `${path}&view=summary` }])
  }
  rows.windowTurn = await windowTurns('10. chat turn (append with ?window=2000, append the reply), Redis', serviceUrl, load)
  rows.turn = await chatTurns('10. chat turn (page of 20 desc, 2 appends), Redis', serviceUrl, '/messages?order=desc&limit=20', load)
  rows.plainTurn = await chatTurns('10. chat turn (full GET, 2 read-modify-write appends), plain design', plainUrl, '', load)
  rows.windowTurn.lost = await lostMessages(serviceUrl, rows.windowTurn.acknowledged, (body) => body.messageCount)
  rows.turn.lost = await lostMessages(serviceUrl, rows.turn.acknowledged, (body) => body.messageCount)
  rows.plainTurn.lost = await lostMessages(plainUrl, rows.plainTurn.acknowledged, (body) => body.messages.length)
  for (const row of [rows.windowTurn, rows.turn, rows.plainTurn]) {
    delete row.acknowledged
    process.stderr.write(`  ${row.title}: ${row.lost} acknowledged messages lost\n`)
  }
  return rows
}

let messageCounter = 0

/** An append of one message to the turn's chat, counted per chat when acknowledged. */
function appendOf (role, acknowledged, query = '') {
  return {
    method: 'POST',
    headers: json,
    setupRequest: (request, context) => ({
      ...request,
      path: `/v1/conversations/${context.id}/messages${query}`,
      body: JSON.stringify({ messages: [{ id: `t${messageCounter++}`, role, text: `${role} says one more thing in this chat turn` }] })
    }),
    onResponse: (status, _body, context) => {
      if (status === 201) acknowledged.set(context.id, (acknowledged.get(context.id) ?? 0) + 1)
    }
  }
}

/**
 * One turn per connection at a time: read the newest messages, append the user's message,
 * append the answer. Counts each conversation's acknowledged appends.
 */
async function chatTurns (title, url, readQuery, load) {
  const acknowledged = new Map()
  const row = await load(title, url, [
    { method: 'GET', setupRequest: (request, context) => { context.id = `chat-${pick(CHAT_POOL)}`; return { ...request, path: `/v1/conversations/${context.id}${readQuery}` } } },
    appendOf('user', acknowledged),
    appendOf('assistant', acknowledged)
  ])
  return { ...row, turns: Math.round(row.rps / 3), acknowledged }
}

/** The turn in two requests: the user's message with the context after it, then the answer. */
async function windowTurns (title, url, load) {
  const acknowledged = new Map()
  const first = appendOf('user', acknowledged, '?window=2000')
  const row = await load(title, url, [
    { ...first, setupRequest: (request, context) => { context.id = `wchat-${pick(CHAT_POOL)}`; return first.setupRequest(request, context) } },
    appendOf('assistant', acknowledged)
  ])
  return { ...row, turns: Math.round(row.rps / 2), acknowledged }
}

/** Acknowledged messages missing from their conversations after the row. */
async function lostMessages (url, acknowledged, countOf) {
  let lost = 0
  for (const [id, appended] of acknowledged) {
    const body = await (await fetch(`${url}/v1/conversations/${id}`)).json()
    lost += Math.max(0, 20 + appended - countOf(body))
  }
  return lost
}
