import t from 'tap'
import { apiSuite } from './helpers/api-suite.js'
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

apiSuite({ name: 'redis-cluster', build: (t, extra = {}) => build(t, { ...env, ...extra }) })
