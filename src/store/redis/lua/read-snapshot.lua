-- uses: conversation
-- ARGV through ('' for every message, else the id of the last message to read), reach.
-- One version of a conversation with everything it owns, as a fork copies it and an export
-- writes it: the document's fields (in read-conversation's order), the messages through
-- one (one per line), their token counts, and the workflow state.
local fields = redis.call('HMGET', DOC, 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'inc')
if not fields[6] then return {'NOT_FOUND'} end
if not reachable(DOC) then return {'OUT_OF_REACH'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local last = -1
if ARGV[1] ~= '' then
  last = redis.call('ZRANK', ORDER, ARGV[1])
  if not last then return {'MESSAGE_NOT_FOUND'} end
end
local ids = redis.call('ZRANGE', ORDER, 0, last)
local tokens = {}
for first = 1, #ids, 1000 do
  local counts = redis.call('HMGET', TOKENS, unpack(ids, first, math.min(first + 999, #ids)))
  for i = 1, #counts do tokens[#tokens + 1] = counts[i] or '0' end
end
local state = redis.call('HMGET', WF, 'body', 'version', 'updatedAt', 'expiresAt')
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], tostring(#ids), messageLines(ids), fields[7] or '0', '',
  table.concat(tokens, ','), state[1] or '', state[2] or '', state[3] or '', state[4] or ''}
