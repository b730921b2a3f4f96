-- uses: helpers
local DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- Every write to a conversation refreshes the TTL of everything it owns. The list of the
-- release before is not among them: every write but PATCH migrates or deletes it first,
-- and replace-body refreshes it itself. The workflow state is refreshed only if it exists
-- (PEXPIREAT answers 0 for a missing key), which saves the EXISTS of every write.
local function refresh (expiresAt)
  for _, key in ipairs({ DOC, ORDER, BODIES, TOKENS, IDS }) do redis.call('PEXPIREAT', key, expiresAt) end
  if redis.call('PEXPIREAT', WF, expiresAt) == 1 then redis.call('HSET', WF, 'expiresAt', expiresAt) end
end

-- Keeps the conversation's own TTL in ms ('' when it has none and follows the service's),
-- so that the writes that do not carry it (appends, message edits, workflow state) use it.
local function ownTtl (ms)
  if ms == '' then redis.call('HDEL', DOC, 'ttl') else redis.call('HSET', DOC, 'ttl', ms) end
end

-- Adds messages after position seq, in chunks (unpack() has a limit on its arguments);
-- answers the last position. ids, bodies and tokens are parallel lists.
local function push (seq, idList, jsonList, tokenList)
  for first = 1, #idList, 500 do
    local last = math.min(first + 499, #idList)
    local scored, bodies, tokens = {}, {}, {}
    for i = first, last do
      seq = seq + 1
      scored[#scored + 1] = seq
      scored[#scored + 1] = idList[i]
      bodies[#bodies + 1] = idList[i]
      bodies[#bodies + 1] = jsonList[i]
      tokens[#tokens + 1] = idList[i]
      tokens[#tokens + 1] = tokenList[i]
    end
    redis.call('SADD', IDS, unpack(idList, first, last))
    redis.call('ZADD', ORDER, unpack(scored))
    redis.call('HSET', BODIES, unpack(bodies))
    redis.call('HSET', TOKENS, unpack(tokens))
  end
  return seq
end

-- Messages passed as ARGV from offset + 1: n ids, then n bodies, then n token counts.
local function messageArgs (offset, n)
  local idList, jsonList, tokenList = {}, {}, {}
  for i = 1, n do
    idList[i] = ARGV[offset + i]
    jsonList[i] = ARGV[offset + n + i]
    tokenList[i] = ARGV[offset + 2 * n + i]
  end
  return idList, jsonList, tokenList
end

-- The stored bodies of these message ids, in order; ids without a body are left out.
local function messageBodies (ids)
  local parts = {}
  for first = 1, #ids, 1000 do
    local bodies = redis.call('HMGET', BODIES, unpack(ids, first, math.min(first + 999, #ids)))
    for i = 1, #bodies do
      if bodies[i] then parts[#parts + 1] = bodies[i] end
    end
  end
  return parts
end

-- The bodies of these message ids one per line, for a caller that keeps each message's
-- bytes: a stored body is JSON.stringify's output, which never holds a raw newline.
local function messageLines (ids)
  return table.concat(messageBodies(ids), '\n')
end

-- The messages from rank 'first' to rank 'last' (negative counts from the end), oldest
-- first, one per line, in either layout: the list of the release before, while a
-- conversation has it.
local function messagesByRank (first, last)
  if redis.call('EXISTS', LEGACY) == 1 then
    return table.concat(redis.call('LRANGE', LEGACY, first, last), '\n')
  end
  return messageLines(redis.call('ZRANGE', ORDER, first, last))
end

-- A streamed message keeps where its stream stands in the document hash, beside the
-- conversation's own fields: s:<id> the last seq applied, e:<id> the byte length of the
-- text's JSON after each seq (from seq 0, separated by commas), n:<id> the text's length
-- in characters (UTF-16 units, as Node counts them) and a:<id> when it last grew (ms).
-- They exist while the message is in_progress, and go with it.
local STREAM_FIELDS = { 's:', 'e:', 'n:', 'a:' }

local function startStream (id, textBytes, textChars, now)
  redis.call('HSET', DOC, 's:' .. id, 0, 'e:' .. id, textBytes, 'n:' .. id, textChars, 'a:' .. id, now)
end

local function endStream (id)
  local fields = {}
  for i, prefix in ipairs(STREAM_FIELDS) do fields[i] = prefix .. id end
  redis.call('HDEL', DOC, unpack(fields))
end

-- Ends the streams of every message, or only of those no longer stored.
local function endStreams (onlyGone)
  for _, field in ipairs(redis.call('HKEYS', DOC)) do
    local id = string.match(field, '^s:(.*)$')
    if id and (not onlyGone or redis.call('HEXISTS', BODIES, id) == 0) then endStream(id) end
  end
end
