-- uses: existing-in-reach, events
-- ARGV now, ttlMs (the service's), ifMatch, messageId. The id stays in the ids set, so it stays used.
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
if redis.call('ZREM', ORDER, ARGV[4]) == 0 then return {'MESSAGE_NOT_FOUND'} end
redis.call('HDEL', BODIES, ARGV[4])
redis.call('HDEL', TOKENS, ARGV[4])
endStream(ARGV[4])
local updatedAt = writeTime(tonumber(ARGV[1]), current[2])
local expiresAt = updatedAt + (tonumber(current[7]) or tonumber(ARGV[2]))
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', tonumber(current[3]) - 1)
refresh(expiresAt)
local ev = emit(DOC, current[5] or '0', 'message.deleted', version + 1, '{"messageId":' .. cjson.encode(ARGV[4]) .. '}', expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[4], current[5] or '0', ev, conversationData(DOC)}
