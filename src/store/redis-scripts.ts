// Lua scripts that make each conversation write atomic inside Redis. Every script touches
// only the keys of one conversation (one hash slot, see redis-keys.ts), so they run
// unchanged on Redis Cluster. Timestamps are milliseconds since the epoch.
//
// Scripts answer { status, ... }: 'OK' or one of 'EXISTS', 'NOT_FOUND', 'WORKFLOW_NOT_FOUND',
// 'PRECONDITION', 'USER_MISMATCH', 'TOO_MANY', 'CONFLICT'.

const helpers = `
-- The entity tag of a version, as tagOf (conversation-rules.ts) builds it. Records from
-- before incarnations existed have none: they count as incarnation '0'.
local function tagOf (incarnation, version)
  if not version then return nil end
  return (incarnation or '0') .. '.' .. version
end

-- ifMatch: '' (no condition), '*', or tags separated by commas (tags never hold one).
local function matches (ifMatch, tag)
  if ifMatch == '' then return true end
  if not tag then return false end
  if ifMatch == '*' then return true end
  for candidate in string.gmatch(ifMatch, '[^,]+') do
    if candidate == tag then return true end
  end
  return false
end

-- updatedAt never goes backwards, whatever the caller's clock says.
local function writeTime (now, previous)
  if previous and tonumber(previous) > now then return tonumber(previous) end
  return now
end

-- Every write to a conversation refreshes the TTL of everything it owns.
local function refresh (doc, msgs, ids, wf, expiresAt)
  redis.call('PEXPIREAT', doc, expiresAt)
  redis.call('PEXPIREAT', msgs, expiresAt)
  redis.call('PEXPIREAT', ids, expiresAt)
  if redis.call('EXISTS', wf) == 1 then
    redis.call('HSET', wf, 'expiresAt', expiresAt)
    redis.call('PEXPIREAT', wf, expiresAt)
  end
end

-- Appends ids and messages in chunks: unpack() has a limit on its arguments.
local function push (msgs, ids, idList, jsonList)
  for first = 1, #idList, 1000 do
    local last = math.min(first + 999, #idList)
    redis.call('SADD', ids, unpack(idList, first, last))
    redis.call('RPUSH', msgs, unpack(jsonList, first, last))
  end
end
`

/**
 * KEYS doc, msgs, ids, wf. ARGV mode, now, ttlMs, ifMatch, ifNoneMatch, userId, body,
 * newIncarnation (used when this write creates the conversation), n, ids…, messages….
 */
export const writeConversation = `${helpers}
local doc, msgs, ids, wf = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[9])
local current = redis.call('HMGET', doc, 'version', 'userId', 'updatedAt', 'createdAt', 'inc')
local version = tonumber(current[1])
if version and ARGV[1] == 'create' then return {'EXISTS'} end
if version and ARGV[5] == '1' then return {'PRECONDITION'} end
if not matches(ARGV[4], tagOf(current[5], version)) then return {'PRECONDITION'} end
if version and current[2] ~= ARGV[6] then return {'USER_MISMATCH'} end
local updatedAt = writeTime(now, current[3])
local expiresAt = updatedAt + ttl
local createdAt = current[4] or tostring(now)
local incarnation = version and (current[5] or '0') or ARGV[8]
redis.call('DEL', msgs, ids)
-- A new conversation never inherits state left under its id.
if not version then redis.call('DEL', wf) end
local idList, jsonList = {}, {}
for i = 1, n do
  idList[i] = ARGV[9 + i]
  jsonList[i] = ARGV[9 + n + i]
end
push(msgs, ids, idList, jsonList)
redis.call('HSET', doc, 'body', ARGV[7], 'userId', ARGV[6], 'createdAt', createdAt, 'updatedAt', updatedAt,
  'expiresAt', expiresAt, 'version', (version or 0) + 1, 'count', n, 'inc', incarnation)
refresh(doc, msgs, ids, wf, expiresAt)
return {'OK', (version or 0) + 1, updatedAt, expiresAt, tonumber(createdAt), version and 0 or 1, incarnation}
`

/**
 * KEYS doc, msgs, ids, wf. ARGV expectedTag, now, ttlMs, body. Compare-and-set of the body
 * on the tag, so a conversation deleted and created again meanwhile is a conflict too;
 * answers the messages, so the caller's answer matches the version it wrote.
 */
export const replaceBody = `${helpers}
local doc, msgs, ids, wf = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local current = redis.call('HMGET', doc, 'version', 'updatedAt', 'count', 'inc')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if tagOf(current[4], version) ~= ARGV[1] then return {'CONFLICT'} end
local updatedAt = writeTime(tonumber(ARGV[2]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[3])
redis.call('HSET', doc, 'body', ARGV[4], 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
refresh(doc, msgs, ids, wf, expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[3], '[' .. table.concat(redis.call('LRANGE', msgs, 0, -1), ',') .. ']'}
`

/**
 * KEYS doc, msgs, ids, wf. ARGV now, ttlMs, ifMatch, maxMessages, n, ids…, messages….
 * Answers the owner and new times too, so the caller can move the index entry at once.
 */
export const appendMessages = `${helpers}
local doc, msgs, ids, wf = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local current = redis.call('HMGET', doc, 'version', 'updatedAt', 'count', 'userId', 'inc')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
local count = tonumber(current[3])
local seen, idList, jsonList = {}, {}, {}
for i = 1, n do
  local id = ARGV[5 + i]
  if not seen[id] and redis.call('SISMEMBER', ids, id) == 0 then
    idList[#idList + 1] = id
    jsonList[#jsonList + 1] = ARGV[5 + n + i]
  end
  seen[id] = true
end
local added = #idList
if added == 0 then return {'OK', 0, n, version, count, 0, 0, current[4], current[5] or '0'} end
if count + added > tonumber(ARGV[4]) then return {'TOO_MANY'} end
local updatedAt = writeTime(now, current[2])
local expiresAt = updatedAt + ttl
push(msgs, ids, idList, jsonList)
redis.call('HSET', doc, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', count + added)
refresh(doc, msgs, ids, wf, expiresAt)
return {'OK', added, n - added, version + 1, count + added, updatedAt, expiresAt, current[4], current[5] or '0'}
`

/** KEYS doc, msgs, ids, wf. ARGV ifMatch, userId ('' for any owner). */
export const deleteConversation = `${helpers}
local current = redis.call('HMGET', KEYS[1], 'version', 'userId', 'updatedAt', 'inc')
local version = tonumber(current[1])
if not version or (ARGV[2] ~= '' and current[2] ~= ARGV[2]) then return {'NOT_FOUND'} end
if not matches(ARGV[1], tagOf(current[4], version)) then return {'PRECONDITION'} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {'OK', current[2], tonumber(current[3])}
`

/**
 * KEYS doc, msgs. One consistent snapshot of a conversation with its messages; they come as
 * one JSON array, so the caller parses once rather than per message.
 */
export const readConversation = `
local fields = redis.call('HMGET', KEYS[1], 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc')
if not fields[6] then return {'NOT_FOUND'} end
local messages = '[' .. table.concat(redis.call('LRANGE', KEYS[2], 0, -1), ',') .. ']'
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], messages, fields[8] or '0'}
`

/** KEYS doc, wf. */
export const readWorkflowState = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local fields = redis.call('HMGET', KEYS[2], 'body', 'version', 'updatedAt', 'expiresAt', 'inc')
if not fields[2] then return {'WORKFLOW_NOT_FOUND'} end
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5] or '0'}
`

/**
 * KEYS doc, wf. ARGV now, ttlMs, ifMatch, ifNoneMatch, body, newIncarnation (used when this
 * write creates the state). The conversation is left as it is.
 */
export const writeWorkflowState = `${helpers}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local current = redis.call('HMGET', KEYS[2], 'version', 'updatedAt', 'inc')
local version = tonumber(current[1])
if version and ARGV[4] == '1' then return {'PRECONDITION'} end
if not matches(ARGV[3], tagOf(current[3], version)) then return {'PRECONDITION'} end
local updatedAt = writeTime(tonumber(ARGV[1]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[2])
local incarnation = version and (current[3] or '0') or ARGV[6]
redis.call('HSET', KEYS[2], 'body', ARGV[5], 'version', (version or 0) + 1, 'updatedAt', updatedAt, 'expiresAt', expiresAt,
  'inc', incarnation)
redis.call('PEXPIREAT', KEYS[2], expiresAt)
return {'OK', (version or 0) + 1, updatedAt, expiresAt, version and 0 or 1, incarnation}
`

/** KEYS doc, wf. ARGV ifMatch. */
export const deleteWorkflowState = `${helpers}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local current = redis.call('HMGET', KEYS[2], 'version', 'inc')
local version = tonumber(current[1])
if not version then return {'WORKFLOW_NOT_FOUND'} end
if not matches(ARGV[1], tagOf(current[2], version)) then return {'PRECONDITION'} end
redis.call('DEL', KEYS[2])
return {'OK'}
`

/**
 * KEYS index. ARGV mode ('NX' or 'GT'), score, id, expiresAt. Adds or moves a user's index
 * entry and keeps the index alive at least as long as the conversation.
 */
export const touchIndex = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
return 1
`

/**
 * KEYS index. ARGV maxScore ('+inf' or ms), afterId ('' for none), count. The next `count`
 * entries strictly after (maxScore, afterId) in list order (score desc, id desc), as
 * id, score, id, score…. Walking inside one script means concurrent writes cannot shift
 * the walk; between calls the caller continues from a position, never from an offset.
 */
export const indexEntriesAfter = `
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
`

/**
 * KEYS index. ARGV id, maxScore, id, maxScore…. Removes entries whose score is not newer
 * than the one the caller saw, so an entry a concurrent write has just moved survives.
 */
export const removeIndexEntries = `
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
`
