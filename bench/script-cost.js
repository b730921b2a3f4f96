import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { loadScript } from '../dist/src/store/redis/scripts.js'
import { startRedis } from './processes.js'

// npm run bench:script-cost
// Redis's own CPU time for the append script, run alone by redis-benchmark on a Redis of
// its own: no service, no load generator, so no contention inflates it (under `npm run
// bench`, Redis shares two cores with both, and INFO commandstats reads about twice these
// figures). Each row also runs the script with one part cut out, to price that part:
// the rows are for reading where the time goes, not scripts the service could run.

const CALLS = 30_000
const USER_INDEX = 'b:user:{u1}:index'
const doc = 'b:conv:{c1}'
const keys = [doc, `${doc}:order`, `${doc}:bodies`, `${doc}:tokens`, `${doc}:message-ids`, `${doc}:workflow`, `${doc}:messages`]
// redis-benchmark puts a new random number for each __rand_int__, so each call appends a new message.
const message = JSON.stringify({ id: 'm__rand_int__', role: 'user', kind: 'text', status: 'completed', text: 'one more message in this chat', createdAt: new Date().toISOString() })

const variants = [
  ['as the service runs it', []],
  ['without the TTL refresh of the conversation\'s keys', [['  refresh(expiresAt)\n', '\n']]],
  ['without the conversation\'s event', [['for i = 1, added do ev = emit', 'for i = 1, 0 do ev = emit']]],
  ['without the record for the user\'s feed', [['local record = conversationData(DOC)', 'local record = \'\'']]],
  ['without the user\'s event (owner known)', [['if indexed == 1 then emitUserEvent(', 'if false then emitUserEvent(']]],
  ['without the index move and the user\'s event (owner known)', [['local indexed = moveNamedOwnersEntry(ARGV[8], current[4], id, updatedAt, expiresAt)', 'local indexed = 0']]],
  ['answering at once: the fixed cost of a call with these arguments and libraries', [['local now, n = tonumber(ARGV[1])', 'do return 1 end local now, n = tonumber(ARGV[1])']]]
]

async function costOf (redis, client, source, indexed) {
  await client.flushall()
  const now = Date.now()
  await client.hset(doc, 'body', '{"tenantId":"default","status":"active","metadata":{}}', 'userId', 'u1', 'createdAt', now, 'updatedAt', now,
    'expiresAt', now + 900_000, 'version', 1, 'count', 0, 'inc', '1', 'sv', 'v2', 'seq', 0)
  const sha = await client.script('LOAD', source)
  const scriptKeys = indexed ? [...keys, USER_INDEX] : keys
  const args = [String(now), '900000', '', '1000000', '', '', '', indexed ? 'u1' : '', '1', 'm__rand_int__', message, '8', '', '', '']
  await client.config('RESETSTAT')
  await promisify(execFile)('redis-benchmark', ['-p', String(redis.port), '-n', String(CALLS), '-c', '10', '-r', '1000000000', '-q',
    'evalsha', sha, String(scriptKeys.length), ...scriptKeys, ...args])
  const stats = (await client.info('commandstats')).split('\n').filter((line) => line.startsWith('cmdstat_'))
  const field = (line, name) => Number(new RegExp(`${name}=([\\d.]+)`).exec(line)[1])
  const script = stats.find((line) => line.startsWith('cmdstat_evalsha:'))
  const commands = stats.filter((line) => !/^cmdstat_(evalsha|config)/.test(line))
  return {
    usPerScript: field(script, 'usec_per_call'),
    commandsPerScript: commands.reduce((sum, line) => sum + field(line, 'calls'), 0) / CALLS,
    usInCommands: commands.reduce((sum, line) => sum + field(line, 'usec'), 0) / CALLS
  }
}

const redis = await startRedis()
const client = new Redis(redis.url)
try {
  for (const indexed of [false, true]) {
    process.stdout.write(`append of one message${indexed ? ', owner known (index entry and user feed in the script)' : ''}:\n`)
    for (const [title, cuts] of variants) {
      let source = loadScript('append-messages').replaceAll('{{EVENTS_RETAINED}}', '1000')
      for (const [from, to] of cuts) source = source.replace(from, to)
      const cost = await costOf(redis, client, source, indexed)
      process.stdout.write(`  ${title}: ${cost.usPerScript.toFixed(1)} µs a script, ${cost.commandsPerScript.toFixed(1)} commands taking ${cost.usInCommands.toFixed(1)} µs\n`)
    }
  }
} finally {
  client.disconnect()
  await redis.stop()
}
