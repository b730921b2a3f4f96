-- uses: existing-in-reach, window, events
-- ARGV incarnation ('' without a cursor), order ('asc' or 'desc'), after (position, '' from
-- the start), limit, maxTokens ('' for none). A page: { 'OK', messageCount, incarnation,
-- next position ('' on the last page), the messages one per line, and with maxTokens id, tokens, … }.
if ARGV[1] ~= '' and ARGV[1] ~= (current[5] or '0') then return {'BAD_CURSOR'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local limit = tonumber(ARGV[4])
local reply = {'OK', current[3], current[5] or '0', lastEvent(DOC)}
if ARGV[5] ~= '' then
  -- A context window: the newest messages, walking back until one does not fit.
  reply[5] = ''
  return withWindow(reply, tokenWindow(tonumber(ARGV[5]), limit))
end
local entries
if ARGV[2] == 'asc' then
  entries = redis.call('ZRANGE', ORDER, ARGV[3] == '' and '-inf' or '(' .. ARGV[3], '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1, 'WITHSCORES')
else
  entries = redis.call('ZRANGE', ORDER, ARGV[3] == '' and '+inf' or '(' .. ARGV[3], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1, 'WITHSCORES')
end
local ids = {}
for i = 1, math.min(#entries, limit * 2), 2 do ids[#ids + 1] = entries[i] end
reply[5] = #entries > limit * 2 and entries[limit * 2] or ''
reply[6] = messageLines(ids)
return reply
