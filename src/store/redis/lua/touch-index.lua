-- uses: user-index, user-feed
-- KEYS index. ARGV mode ('NX', 'GT' or 'REM'), score, id, expiresAt, then optionally the
-- event of the user's feed that the move stands for: type, version, data.
-- NX and GT add or move a user's index entry and keep the index alive at least as long as
-- the conversation; a GT that is stale (lib/user-feed.lua) changes nothing. REM removes the
-- entry, unless a write has moved it past `score` since. Answers 0 when nothing was done.
if ARGV[1] == 'REM' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
  if score and tonumber(score) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[3]) end
elseif ARGV[1] == 'GT' and isStale(KEYS[1], ARGV[3], ARGV[2], ARGV[5]) then
  return 0
else
  moveIndexEntry(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
end
if ARGV[5] then emitUserEvent(KEYS[1], ARGV[5], ARGV[3], ARGV[6], ARGV[7], ARGV[2]) end
return 1
