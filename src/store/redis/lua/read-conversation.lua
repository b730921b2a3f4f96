-- uses: conversation, fingerprint, events
-- ARGV last ('' for every message, else only the newest N). One consistent snapshot of a
-- conversation with the messages asked for (one per line), in either layout, and its fingerprint. (A read
-- that knows a fingerprint checks it with plain commands first: src/store/redis/views.ts.)
local fields = redis.call('HMGET', DOC, 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
if not fields[6] then return {'NOT_FOUND'} end
local fingerprint = fingerprintOf(DOC, fields[8], fields[6], fields[9])
local messages = ''
if ARGV[1] == '' then messages = messagesByRank(0, -1)
elseif tonumber(ARGV[1]) > 0 then messages = messagesByRank(-tonumber(ARGV[1]), -1) end
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], messages, fields[8] or '0', fingerprint, lastEvent(DOC)}
