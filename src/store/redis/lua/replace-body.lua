-- uses: conversation, events
-- ARGV expectedTag, now, ttlMs (the one this write uses), body, own TTL in ms ('' for the
-- service's). Compare-and-set of the body on the tag, so a
-- conversation deleted and created again meanwhile is a conflict too; answers the messages,
-- so the caller's answer matches the version it wrote.
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'inc')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if tagOf(current[4], version) ~= ARGV[1] then return {'CONFLICT'} end
local updatedAt = writeTime(tonumber(ARGV[2]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[3])
redis.call('HSET', DOC, 'body', ARGV[4], 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
ownTtl(ARGV[5])
refresh(expiresAt)
-- A conversation still in the layout of the release before keeps its list (PATCH does not migrate).
redis.call('PEXPIREAT', LEGACY, expiresAt)
local ev = emit(DOC, current[4] or '0', 'conversation.updated', version + 1, conversationData(DOC), expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[3], messagesByRank(0, -1), ev}
