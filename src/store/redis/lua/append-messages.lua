-- uses: conversation
-- ARGV now, ttlMs, ifMatch, maxMessages, n, ids…, messages…, tokens…, reach. Answers the owner and
-- new times too, so the caller can move the index entry at once.
local now, ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'userId', 'inc', 'seq')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if not reachable(DOC) then return {'OUT_OF_REACH'} end
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local count = tonumber(current[3])
local seen, idList, jsonList, tokenList = {}, {}, {}, {}
for i = 1, n do
  local id = ARGV[5 + i]
  if not seen[id] and redis.call('SISMEMBER', IDS, id) == 0 then
    idList[#idList + 1] = id
    jsonList[#jsonList + 1] = ARGV[5 + n + i]
    tokenList[#tokenList + 1] = ARGV[5 + 2 * n + i]
  end
  seen[id] = true
end
local added = #idList
if added == 0 then return {'OK', 0, n, version, count, 0, 0, current[4], current[5] or '0'} end
if count + added > tonumber(ARGV[4]) then return {'TOO_MANY'} end
local updatedAt = writeTime(now, current[2])
local expiresAt = updatedAt + ttl
local seq = push(tonumber(current[6]) or 0, idList, jsonList, tokenList)
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', count + added, 'seq', seq)
refresh(expiresAt)
return {'OK', added, n - added, version + 1, count + added, updatedAt, expiresAt, current[4], current[5] or '0'}
