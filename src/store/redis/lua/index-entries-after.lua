-- KEYS index. ARGV maxScore ('+inf' or ms), afterId ('' for none), count. The next `count`
-- entries strictly after (maxScore, afterId) in list order (score desc, id desc), as
-- id, score, id, score…. Walking inside one script means concurrent writes cannot shift
-- the walk; between calls the caller continues from a position, never from an offset.
-- Byte order, as Redis orders members; Lua's < on strings follows the server's locale.
local function before (a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local count, afterId = tonumber(ARGV[3]), ARGV[2]
local maxScore = tonumber(ARGV[1])
local result, offset = {}, 0
while #result < count * 2 do
  local entries = redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, count, 'WITHSCORES')
  for i = 1, #entries, 2 do
    local id, score = entries[i], tonumber(entries[i + 1])
    if #result < count * 2 and (afterId == '' or score < maxScore or before(id, afterId)) then
      result[#result + 1] = id
      result[#result + 1] = entries[i + 1]
    end
  end
  if #entries < count * 2 then break end
  offset = offset + count
end
return result
