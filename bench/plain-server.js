import express from 'express'
import { Redis } from 'ioredis'

// The plain design the read-path targets compare against: Express and ioredis, one JSON
// string per conversation, a sorted set per user, appends by read-modify-write (which loses
// messages when two appends to one conversation overlap). Written for the bench only.

const redis = new Redis(process.env.REDIS_URL)
const app = express()
app.use(express.json({ limit: '10mb' }))
const key = (id) => `plain:conv:${id}`
const indexKey = (userId) => `plain:user:${userId}`

app.post('/v1/conversations', async (req, res) => {
  const now = Date.now()
  const conversation = { id: req.body.id ?? crypto.randomUUID(), status: 'active', ...req.body, version: 1, createdAt: new Date(now).toISOString(), updatedAt: new Date(now).toISOString() }
  conversation.messages = conversation.messages.map((message) => ({ kind: 'text', createdAt: conversation.createdAt, ...message }))
  if (await redis.set(key(conversation.id), JSON.stringify(conversation), 'NX') === null) return res.status(409).json({ error: 'exists' })
  await redis.zadd(indexKey(conversation.userId), now, conversation.id)
  res.status(201).json(conversation)
})

app.get('/v1/conversations/:id', async (req, res) => {
  const stored = await redis.get(key(req.params.id))
  if (stored === null) return res.status(404).json({ error: 'not found' })
  res.json(JSON.parse(stored))
})

app.post('/v1/conversations/:id/messages', async (req, res) => {
  const stored = await redis.get(key(req.params.id))
  if (stored === null) return res.status(404).json({ error: 'not found' })
  const conversation = JSON.parse(stored)
  const now = new Date().toISOString()
  conversation.messages.push(...req.body.messages.map((message) => ({ kind: 'text', createdAt: now, ...message })))
  conversation.version += 1
  conversation.updatedAt = now
  await redis.set(key(req.params.id), JSON.stringify(conversation))
  await redis.zadd(indexKey(conversation.userId), Date.now(), conversation.id)
  res.status(201).json({ appended: req.body.messages.length, version: conversation.version })
})

app.get('/v1/users/:userId/conversations', async (req, res) => {
  const ids = await redis.zrevrange(indexKey(req.params.userId), 0, Number(req.query.limit ?? 20) - 1)
  const stored = ids.length === 0 ? [] : await redis.mget(ids.map(key))
  res.json({ items: stored.filter((item) => item !== null).map((item) => JSON.parse(item)) })
})

const server = app.listen(Number(process.env.PORT), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); redis.quit().finally(() => process.exit(0)) })
