-- uses: existing-in-reach, events
-- ARGV now, ttlMs (the service's: a conversation's own wins), ifMatch, messageId. Deletes
-- every message after messageId in one write; their ids stay in the ids set, so they stay
-- used. Answers { 'OK', deleted, count, version, updatedAt, expiresAt, owner, incarnation,
-- last event } (deleted 0: nothing changed), or { 'MESSAGE_NOT_FOUND' }. Each message deleted
-- is a message.deleted event.
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local position = redis.call('ZSCORE', ORDER, ARGV[4])
if not position then return {'MESSAGE_NOT_FOUND'} end
local count = tonumber(current[3])
local after = redis.call('ZRANGE', ORDER, '(' .. position, '+inf', 'BYSCORE')
if #after == 0 then return {'OK', 0, count, version, 0, 0, current[4], current[5] or '0', lastEvent(DOC)} end
for first = 1, #after, 1000 do
  local last = math.min(first + 999, #after)
  redis.call('ZREM', ORDER, unpack(after, first, last))
  redis.call('HDEL', BODIES, unpack(after, first, last))
  redis.call('HDEL', TOKENS, unpack(after, first, last))
end
endStreams(true)
local updatedAt = writeTime(tonumber(ARGV[1]), current[2])
local expiresAt = updatedAt + (tonumber(current[7]) or tonumber(ARGV[2]))
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', count - #after)
refresh(expiresAt)
local ev
for _, id in ipairs(after) do
  ev = emit(DOC, current[5] or '0', 'message.deleted', version + 1, '{"messageId":' .. cjson.encode(id) .. '}', expiresAt)
end
return {'OK', #after, count - #after, version + 1, updatedAt, expiresAt, current[4], current[5] or '0', ev, conversationData(DOC)}
