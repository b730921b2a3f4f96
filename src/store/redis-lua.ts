import { SCHEMA_STAMP } from './redis-records.js'

// Lua shared by the scripts. Conversation scripts take the seven keys of one conversation
// in the order of `conversationKeyList` (redis-keys.ts); the helpers name them.

/** A record's fingerprint, as fingerprintOf (redis-records.ts) builds it: '' without the current stamp. */
export const fingerprint = `
local function fingerprintOf (doc, incarnation, version, stamp)
  if stamp ~= '${SCHEMA_STAMP}' then return '' end
  return (incarnation or '0') .. '.' .. version .. '.' .. stamp .. '.' .. redis.call('HSTRLEN', doc, 'body')
end
`

/**
 * Whether the caller may reach the conversation whose document is doc. The last two ARGV
 * of a script that uses it are the caller's tenants, separated by spaces ('' for every
 * tenant), and its user ('' for any): see reachArgs (redis-commands.ts).
 */
export const reach = `
local function reachable (doc)
  local tenants, user = ARGV[#ARGV - 1], ARGV[#ARGV]
  if tenants == '' and user == '' then return true end
  local owner = redis.call('HMGET', doc, 'userId', 'tenantId')
  if user ~= '' and owner[1] ~= user then return false end
  if tenants == '' then return true end
  local tenant = owner[2]
  if not tenant then
    -- Written by a release before the tenant had a field of its own: it is in the body.
    local ok, body = pcall(cjson.decode, redis.call('HGET', doc, 'body') or '')
    tenant = ok and type(body) == 'table' and body.tenantId or nil
  end
  for candidate in string.gmatch(tenants, '%S+') do
    if candidate == tenant then return true end
  end
  return false
end
`

export const helpers = `${reach}
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
`

export const conversationHelpers = `${helpers}
local DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- Every write to a conversation refreshes the TTL of everything it owns.
local function refresh (expiresAt)
  for _, key in ipairs({ DOC, ORDER, BODIES, TOKENS, IDS, LEGACY }) do redis.call('PEXPIREAT', key, expiresAt) end
  if redis.call('EXISTS', WF) == 1 then
    redis.call('HSET', WF, 'expiresAt', expiresAt)
    redis.call('PEXPIREAT', WF, expiresAt)
  end
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

-- The bodies of these message ids as one JSON array, so the caller parses once.
local function messagesJson (ids)
  local parts = {}
  for first = 1, #ids, 1000 do
    local bodies = redis.call('HMGET', BODIES, unpack(ids, first, math.min(first + 999, #ids)))
    for i = 1, #bodies do
      if bodies[i] then parts[#parts + 1] = bodies[i] end
    end
  end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- The messages from rank 'first' to rank 'last' (negative counts from the end), oldest
-- first, in either layout: the list of the release before, while a conversation has it.
local function messagesByRank (first, last)
  if redis.call('EXISTS', LEGACY) == 1 then
    return '[' .. table.concat(redis.call('LRANGE', LEGACY, first, last), ',') .. ']'
  end
  return messagesJson(redis.call('ZRANGE', ORDER, first, last))
end
`
