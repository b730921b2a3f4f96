import Fastify from 'fastify'
import { createResumableStreamContext } from 'resumable-stream/ioredis'

// The peer of the fan-out row: Vercel's resumable-stream 2.x on the same Redis, served over
// HTTP like the service. The producer's instance keeps the chunks in its memory (the
// library's design); followers on another instance resume it through Redis pub/sub.
//   POST /streams/:id            starts a stream (its producer drains it here)
//   POST /streams/:id/deltas     adds one chunk (body: the text), answered once enqueued
//   POST /streams/:id/end        ends it
//   GET  /streams/:id            follows it as text/event-stream

const context = createResumableStreamContext({ waitUntil: null })
const producers = new Map()
const app = Fastify({ logger: false })
app.addContentTypeParser('text/plain', { parseAs: 'string' }, (request, body, done) => { done(null, body) })

app.post('/streams/:id', async (request) => {
  let controller
  const source = new ReadableStream({ start: (c) => { controller = c } })
  producers.set(request.params.id, controller)
  const stream = await context.createNewResumableStream(request.params.id, () => source)
  // The producer's own copy: drained, as a route answering the producer would.
  stream.pipeTo(new WritableStream()).catch(() => {})
  return { started: true }
})

app.post('/streams/:id/deltas', async (request) => {
  producers.get(request.params.id).enqueue(`data: ${request.body}\n\n`)
  return { ok: true }
})

app.post('/streams/:id/end', async (request) => {
  producers.get(request.params.id).close()
  producers.delete(request.params.id)
  return { ended: true }
})

app.get('/streams/:id', async (request, reply) => {
  const stream = await context.resumeExistingStream(request.params.id)
  if (stream === null || stream === undefined) return reply.code(422).send({ error: 'done' })
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for await (const chunk of stream) reply.raw.write(chunk)
  reply.raw.end()
  return reply
})

app.get('/', async () => ({ ok: true }))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
