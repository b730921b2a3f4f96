import t from 'tap'
import { apiSuite } from './helpers/api-suite.js'
import { portabilitySuite } from './helpers/portability-suite.js'
import { redisBackend } from './helpers/backends.js'
import { startRedis } from './helpers/redis-server.js'

// The whole API contract against a real redis-server over TLS, with a CA made at test time.
const server = await startRedis({ tls: true })
t.teardown(() => server.close())

apiSuite(redisBackend('redis-tls', server))
// An export imported into memory, and one of memory imported here.
portabilitySuite(redisBackend('redis-tls', server))
