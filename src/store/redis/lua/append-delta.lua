-- uses: existing-in-reach, user-index, events
-- KEYS the conversation's seven, and on a single Redis the owner's index (KEYS[8]) when the
-- caller knows the owner. ARGV now, ttlMs (the service's: a conversation's own wins), ifMatch,
-- messageId, seq, text (the delta's JSON string, without its quotes), its length in
-- characters, its tokens, the most characters a streamed text may hold, the owner the index
-- belongs to, reach. The rules are those of stream-rules.ts. The stored message keeps its
-- text last (withTextLast), so the delta is spliced in before the closing '"}'.
-- Answers { 'OK', textLength, version, updatedAt, expiresAt, owner, incarnation, indexed, last event },
-- { 'REPEAT', textLength, tag, last event } (that seq was applied with this text: nothing changes),
-- { 'OUT_OF_ORDER', expectedSeq }, { 'NOT_IN_PROGRESS', message JSON }, { 'TOO_LARGE' }.
local now, id, seq, text = tonumber(ARGV[1]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local body = redis.call('HGET', BODIES, id)
if not body then return {'MESSAGE_NOT_FOUND'} end
local stream = redis.call('HMGET', DOC, 's:' .. id, 'e:' .. id, 'n:' .. id)
local last = tonumber(stream[1])
if not last then return {'NOT_IN_PROGRESS', body} end
local chars = tonumber(stream[3])
local textEnd = tonumber(string.match(stream[2], '(%d+)$'))
if seq <= last then
  local ends = {}
  for offset in string.gmatch(stream[2], '%d+') do ends[#ends + 1] = tonumber(offset) end
  local before = #body - 2 - textEnd
  if string.sub(body, before + ends[seq] + 1, before + ends[seq + 1]) == text then
    return {'REPEAT', chars, tagOf(current[5], version), lastEvent(DOC)}
  end
  return {'OUT_OF_ORDER', last + 1}
end
if seq ~= last + 1 then return {'OUT_OF_ORDER', last + 1} end
chars = chars + tonumber(ARGV[7])
if chars > tonumber(ARGV[9]) then return {'TOO_LARGE'} end
redis.call('HSET', BODIES, id, string.sub(body, 1, #body - 2) .. text .. '"}')
redis.call('HINCRBY', TOKENS, id, ARGV[8])
redis.call('HSET', DOC, 's:' .. id, seq, 'e:' .. id, stream[2] .. ',' .. (textEnd + #text), 'n:' .. id, chars, 'a:' .. id, now)
local updatedAt = writeTime(now, current[2])
local expiresAt = updatedAt + (tonumber(current[7]) or tonumber(ARGV[2]))
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
refresh(expiresAt)
local ev = emit(DOC, current[5] or '0', 'message.delta', version + 1,
  '{"messageId":' .. cjson.encode(id) .. ',"seq":' .. seq .. ',"text":"' .. text .. '"}', expiresAt)
local indexed = moveNamedOwnersEntry(ARGV[10], current[4], string.match(DOC, '{(.*)}$'), updatedAt, expiresAt)
return {'OK', chars, version + 1, updatedAt, expiresAt, current[4], current[5] or '0', indexed, ev}
