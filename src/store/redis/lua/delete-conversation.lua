-- uses: conversation, events, user-feed
-- ARGV ifMatch, userId ('' for any owner), reach.
local current = redis.call('HMGET', DOC, 'version', 'userId', 'updatedAt', 'inc', 'body')
local version = tonumber(current[1])
if not version or (ARGV[2] ~= '' and current[2] ~= ARGV[2]) then return {'NOT_FOUND'} end
if not reachable(DOC) then return {'OUT_OF_REACH'} end
if not matches(ARGV[1], tagOf(current[4], version)) then return {'PRECONDITION'} end
emitDeleted(DOC, current[4] or '0', version)
redis.call('DEL', DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY)
return {'OK', current[2], tonumber(current[3]), version, deletedData(current[5])}
