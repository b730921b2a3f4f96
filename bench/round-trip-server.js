import Fastify from 'fastify'
import { Redis } from 'ioredis'

// The Redis round-trip limit: a bare Fastify route that does one ioredis GET and sends the
// stored bytes as they are (seeded with a GET of the fixture from the service).

const redis = new Redis(process.env.REDIS_URL)
const app = Fastify({ logger: false })
app.get('/v1/conversations/:id', async (request, reply) => {
  const body = await redis.getBuffer(`bare:conv:${request.params.id}`)
  if (body === null) return reply.code(404).send({ error: 'not found' })
  return reply.type('application/json; charset=utf-8').send(body)
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.on('SIGTERM', () => { app.close().then(() => redis.quit()).then(() => process.exit(0), () => process.exit(1)) })
