import Fastify from 'fastify'

// The framework ceiling: the same bytes a GET of the fixture returns, from memory.
const app = Fastify({ logger: false })
const body = process.env.BODY ?? '{}'
app.get('/', async (_request, reply) => reply.type('application/json; charset=utf-8').send(body))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
