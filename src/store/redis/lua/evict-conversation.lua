-- uses: conversation
-- ARGV userId, score (the updatedAt of the index entry the caller saw). Deletes the
-- conversation with all it owns, for a user past the per-user cap, unless a write has moved
-- it since: it is then no longer among the least recently updated.
local current = redis.call('HMGET', DOC, 'userId', 'updatedAt')
if current[1] ~= ARGV[1] then return {'GONE'} end
if tonumber(current[2]) > tonumber(ARGV[2]) then return {'MOVED'} end
redis.call('DEL', DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY)
return {'OK'}
