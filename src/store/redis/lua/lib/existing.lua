-- uses: conversation
-- current[7] is the conversation's own TTL in ms, if it has one.
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'userId', 'inc', 'seq', 'ttl')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
