-- uses: conversation
-- Context windows, as a read answers them and as an append answers them after its write.

-- The newest messages whose tokens add up to at most budget (at most limit of them),
-- walking back until one does not fit: their ids and token counts, newest first.
local function tokenWindow (budget, limit)
  local ids, tokens, offset = {}, {}, 0
  while #ids < limit do
    local batch = redis.call('ZRANGE', ORDER, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, math.min(100, limit - #ids))
    if #batch == 0 then break end
    local counts = redis.call('HMGET', TOKENS, unpack(batch))
    for i = 1, #batch do
      local count = tonumber(counts[i]) or 0
      if count > budget then return ids, tokens end
      budget = budget - count
      ids[#ids + 1] = batch[i]
      tokens[#tokens + 1] = count
    end
    offset = offset + #batch
  end
  return ids, tokens
end

-- The newest n messages, oldest first: their ids and token counts.
local function lastWindow (n)
  if n == 0 then return {}, {} end
  local ids = redis.call('ZRANGE', ORDER, -n, -1)
  if #ids == 0 then return ids, {} end
  return ids, redis.call('HMGET', TOKENS, unpack(ids))
end

-- Adds a window to a reply: its messages one per line, then id, tokens, id, tokens….
local function withWindow (reply, ids, tokens)
  reply[#reply + 1] = messageLines(ids)
  for i = 1, #ids do
    reply[#reply + 1] = ids[i]
    reply[#reply + 1] = tonumber(tokens[i]) or 0
  end
  return reply
end
