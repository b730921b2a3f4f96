-- KEYS index. ARGV id, maxScore, id, maxScore…. Removes entries whose score is not newer
-- than the one the caller saw, so an entry a concurrent write has just moved survives.
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
