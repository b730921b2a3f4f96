import t from 'tap'
import { apiSuite } from './helpers/api-suite.js'
import { redisBackend } from './helpers/backends.js'
import { startRedis } from './helpers/redis-server.js'

// The whole API contract against a real redis-server over plain TCP.
const server = await startRedis()
t.teardown(() => server.close())

apiSuite(redisBackend('redis', server))
