import t from 'tap'
import { accessSuite } from './helpers/access-suite.js'
import { apiSuite } from './helpers/api-suite.js'
import { portabilitySuite } from './helpers/portability-suite.js'
import { build } from './helpers/build.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

// The whole API contract against a real local Redis Cluster (three masters, three
// replicas): any command that crossed hash slots would fail here with CROSSSLOT.
const cluster = await startRedisCluster()
t.teardown(() => cluster.close())

const env = {
  REDIS_URL: cluster.url,
  REDIS_ALLOW_PLAINTEXT: 'true',
  REDIS_CLUSTER: 'true',
  REDIS_KEY_PREFIX: `test-${process.pid}:`
}

const backend = { name: 'redis-cluster', build: (t: Parameters<typeof build>[0], extra = {}, options = {}) => build(t, { ...env, ...extra }, options) }
apiSuite(backend)
// An export imported into memory, and one of memory imported here.
portabilitySuite(backend)
accessSuite(backend)
