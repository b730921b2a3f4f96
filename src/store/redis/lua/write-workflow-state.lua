-- uses: helpers, events
-- KEYS doc, wf. ARGV now, ttlMs (the service's: the conversation's own wins), ifMatch, ifNoneMatch, body, newIncarnation (used when this
-- write creates the state), reach. The conversation is left as it is.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
local current = redis.call('HMGET', KEYS[2], 'version', 'updatedAt', 'inc')
local version = tonumber(current[1])
if version and ARGV[4] == '1' then return {'PRECONDITION'} end
if not matches(ARGV[3], tagOf(current[3], version)) then return {'PRECONDITION'} end
local updatedAt = writeTime(tonumber(ARGV[1]), current[2])
-- The state lives as long as its conversation would after a write: the conversation's TTL.
local expiresAt = updatedAt + (tonumber(redis.call('HGET', KEYS[1], 'ttl')) or tonumber(ARGV[2]))
local incarnation = version and (current[3] or '0') or ARGV[6]
redis.call('HSET', KEYS[2], 'body', ARGV[5], 'version', (version or 0) + 1, 'updatedAt', updatedAt, 'expiresAt', expiresAt,
  'inc', incarnation)
redis.call('PEXPIREAT', KEYS[2], expiresAt)
local conversation = redis.call('HMGET', KEYS[1], 'inc', 'version', 'expiresAt')
local data = '{"record":' .. cjson.encode({ ARGV[5], tostring((version or 0) + 1), tostring(updatedAt), tostring(expiresAt), incarnation }) .. '}'
local ev = emit(KEYS[1], conversation[1] or '0', 'workflow_state.updated', conversation[2], data, conversation[3])
return {'OK', (version or 0) + 1, updatedAt, expiresAt, version and 0 or 1, incarnation, conversation[1] or '0', ev}
