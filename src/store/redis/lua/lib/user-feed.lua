-- A user's feed: one event per write of one of the user's conversations (deltas excepted),
-- written in the user's slot by the script that moves the conversation's index entry, so
-- that the entry and its event change together. Its keys follow from the index's
-- (<prefix>user:{<userId>}:index): the hash <prefix>user:{<userId>}:feed holds inc (the
-- feed's epoch, from the server's clock when it starts) and ev (its events so far); the
-- stream <feed>:events:<inc> keeps the newest EVENTS_RETAINED, entry ids '<seq>-0', fields
-- t (type), v (the conversation's version), d (the conversation's id as c, then the type's
-- fields: a record from lib/events.lua's conversationData, or JSON that Node wrote); each
-- event is also published on the shard channel <feed>:live. Recent deletions are kept in the
-- sorted set <feed>:graves (see isStale).
local function userFeedOf (index)
  return string.sub(index, 1, -6) .. 'feed'
end

-- The feed (and its log) live at least as long as the user's index, and a minute at least.
local function outliveIndex (key, index)
  local ttl = math.max(redis.call('PTTL', index), 60000)
  if redis.call('PEXPIRE', key, ttl, 'GT') == 0 and redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ttl) end
end

-- The feed's epoch, starting the feed when it has none.
local function userFeedEpoch (feed, index)
  local inc = redis.call('HGET', feed, 'inc')
  if inc then return inc end
  local now = redis.call('TIME')
  inc = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('HSET', feed, 'inc', inc)
  outliveIndex(feed, index)
  return inc
end

-- Steps that move an index entry can arrive out of order (two instances, or an append's
-- move that a cluster runs after the caller is answered), and after the conversation was
-- deleted. A deletion leaves a tombstone in the feed's hash (d:<id>, the deleted
-- conversation's updatedAt) for ten minutes. A create's move is stale when its entry (added
-- before its script) is gone again: the conversation was deleted since, or evicted by its
-- own script's cap; it clears the tombstone otherwise. Any other move is stale when the
-- entry is newer, or the tombstone no older. A stale move neither moves nor writes an event.
local TOMBSTONE_MS = 600000

local function isStale (index, id, score, kind)
  local current = redis.call('ZSCORE', index, id)
  if kind == 'conversation.created' then
    if not current then return true end
    redis.call('HDEL', userFeedOf(index), 'd:' .. id)
    return false
  end
  if current and tonumber(current) > tonumber(score) then return true end
  local dead = redis.call('HGET', userFeedOf(index), 'd:' .. id)
  return dead ~= false and tonumber(score) <= tonumber(dead)
end

-- Records a deletion, and forgets the tombstones older than TOMBSTONE_MS. The dates live as
-- long as the feed, so that every tombstone is forgotten in time.
local function bury (feed, index, id, updatedAt)
  local now = redis.call('TIME')
  local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local graves = feed .. ':graves'
  for _, old in ipairs(redis.call('ZRANGE', graves, '-inf', nowMs - TOMBSTONE_MS, 'BYSCORE')) do redis.call('HDEL', feed, 'd:' .. old) end
  redis.call('ZREMRANGEBYSCORE', graves, '-inf', nowMs - TOMBSTONE_MS)
  redis.call('HSET', feed, 'd:' .. id, updatedAt)
  redis.call('ZADD', graves, nowMs, id)
  outliveIndex(graves, index)
end

local function emitUserEvent (index, kind, conversationId, version, data, updatedAt)
  local feed = userFeedOf(index)
  if kind == 'conversation.deleted' then bury(feed, index, conversationId, updatedAt) end
  local inc = userFeedEpoch(feed, index)
  local seq = redis.call('HINCRBY', feed, 'ev', 1)
  local log = feed .. ':events:' .. inc
  local head = '{"c":' .. cjson.encode(conversationId)
  local entry = data == '{}' and (head .. '}') or (head .. ',' .. string.sub(data, 2))
  redis.call('XADD', log, 'MAXLEN', '{{EVENTS_RETAINED}}', seq .. '-0', 't', kind, 'v', version, 'd', entry)
  outliveIndex(feed, index)
  outliveIndex(log, index)
  redis.call('SPUBLISH', feed .. ':live', inc .. '\n' .. seq .. '\n' .. kind .. '\n' .. version .. '\n' .. entry)
end

-- A conversation.deleted event names the conversation's tenant, so that reach applies to it.
local function deletedData (body)
  local ok, decoded = pcall(cjson.decode, body or '')
  local tenant = ok and type(decoded) == 'table' and decoded.tenantId or 'default'
  return cjson.encode({ tenantId = tenant })
end
