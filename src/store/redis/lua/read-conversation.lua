-- uses: conversation, fingerprint, events
-- ARGV last ('' for every message, else only the newest N), known fingerprint ('' for
-- none). One consistent snapshot of a conversation with the messages asked for, in either
-- layout, and its fingerprint; or just 'SAME' when the fingerprint is the one known.
if ARGV[2] ~= '' then
  -- Most reads find the version read last time: answer them without copying the body.
  local tag = redis.call('HMGET', DOC, 'version', 'inc', 'sv')
  if tag[1] and fingerprintOf(DOC, tag[2], tag[1], tag[3]) == ARGV[2] then return {'SAME', lastEvent(DOC)} end
end
local fields = redis.call('HMGET', DOC, 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
if not fields[6] then return {'NOT_FOUND'} end
local fingerprint = fingerprintOf(DOC, fields[8], fields[6], fields[9])
local messages = '[]'
if ARGV[1] == '' then messages = messagesByRank(0, -1)
elseif tonumber(ARGV[1]) > 0 then messages = messagesByRank(-tonumber(ARGV[1]), -1) end
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], messages, fields[8] or '0', fingerprint, lastEvent(DOC)}
