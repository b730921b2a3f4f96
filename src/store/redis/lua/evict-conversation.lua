-- uses: conversation, events, user-feed
-- ARGV userId, score (the updatedAt of the index entry the caller saw). Deletes the
-- conversation with all it owns, for a user past the per-user cap, unless a write has moved
-- it since: it is then no longer among the least recently updated.
local current = redis.call('HMGET', DOC, 'userId', 'updatedAt', 'inc', 'version', 'body')
if current[1] ~= ARGV[1] then return {'GONE'} end
if tonumber(current[2]) > tonumber(ARGV[2]) then return {'MOVED'} end
emitDeleted(DOC, current[3] or '0', current[4])
redis.call('DEL', DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY)
return {'OK', current[4], deletedData(current[5])}
