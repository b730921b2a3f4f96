import { writeFileSync } from 'node:fs'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { createParser } from 'eventsource-parser'

// The followers of a fan-out row, in a process of their own, so that parsing their events
// does not delay the producer or its acknowledgements. Opens FOLLOWERS feeds of FOLLOW_URL
// (50 at a time), prints `ready` once all answered, and notes each delta's seq and arrival
// time (performance.timeOrigin + now(): the producer's clock too). After `done` on stdin
// it waits until EXPECTED arrivals, or 60 s, then writes them to OUT as JSON and exits.

const { FOLLOW_URL, FOLLOW_HEADERS, FOLLOWERS, EXPECTED, KIND, OUT } = process.env
const count = Number(FOLLOWERS)
const expected = Number(EXPECTED)
const seqOf = KIND === 'service'
  ? (event) => event.event === 'message.delta' ? JSON.parse(event.data).seq : undefined
  : (event) => Number(event.data.split('|')[0])
const seqs = []
const times = []
const requests = []

// node:http rather than fetch: a follower costs this process far less without web streams,
// and this process must not be what delays an arrival.
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })

function follow () {
  return new Promise((resolve, reject) => {
    const request = http.get(FOLLOW_URL, { agent, headers: { accept: 'text/event-stream', ...JSON.parse(FOLLOW_HEADERS) } }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`follow ${FOLLOW_URL}: ${response.statusCode}`))
        return
      }
      const parser = createParser({
        onEvent: (event) => {
          const seq = seqOf(event)
          if (seq === undefined) return
          seqs.push(seq)
          times.push(performance.timeOrigin + performance.now())
        }
      })
      response.setEncoding('utf8')
      response.on('data', (chunk) => { parser.feed(chunk) })
      response.on('error', () => {})
      resolve()
    })
    request.on('error', reject)
    requests.push(request)
  })
}

for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, follow))
process.stdout.write('ready\n')
for await (const line of createInterface({ input: process.stdin })) if (line === 'done') break
for (let waited = 0; seqs.length < expected && waited < 60_000; waited += 50) await sleep(50)
writeFileSync(OUT, JSON.stringify({ seqs, times }))
for (const request of requests) request.destroy()
process.exit(0)
