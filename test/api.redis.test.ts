import t from 'tap'
import { accessSuite } from './helpers/access-suite.js'
import { apiSuite } from './helpers/api-suite.js'
import { portabilitySuite } from './helpers/portability-suite.js'
import { redisBackend } from './helpers/backends.js'
import { startRedis } from './helpers/redis-server.js'

// The whole API contract against a real redis-server over plain TCP.
const server = await startRedis()
t.teardown(() => server.close())

apiSuite(redisBackend('redis', server))
// An export imported into memory, and one of memory imported here.
portabilitySuite(redisBackend('redis', server))
// Roles, tenants and delegated tokens, checked inside the scripts.
accessSuite(redisBackend('redis', server))
