-- uses: conversation
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'userId', 'inc', 'seq')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
