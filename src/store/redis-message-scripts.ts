import { conversationHelpers as conversation } from './redis-lua.js'

// Scripts for the messages as a resource. Each takes the conversation's seven keys
// (conversationKeyList), so it is atomic with every other write to the conversation, and
// each reads or writes only what it returns: pages by position in the order sorted set,
// messages by id in the bodies hash. Statuses as in redis-scripts.ts; all but the migration
// take the caller's reach as their last two ARGV.

const existing = `${conversation}
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'userId', 'inc', 'seq')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
`

const existingInReach = `${existing}
if not reachable(DOC) then return {'OUT_OF_REACH'} end
`

/**
 * ARGV incarnation ('' without a cursor), order ('asc' or 'desc'), after (position, '' from
 * the start), limit, maxTokens ('' for none). A page: { 'OK', messageCount, incarnation,
 * next position ('' on the last page), messages JSON, and with maxTokens id, tokens, … }.
 */
export const readMessages = `${existingInReach}
if ARGV[1] ~= '' and ARGV[1] ~= (current[5] or '0') then return {'BAD_CURSOR'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local limit = tonumber(ARGV[4])
local reply = {'OK', current[3], current[5] or '0'}
if ARGV[5] ~= '' then
  -- A context window: the newest messages, walking back until one does not fit.
  local budget, ids, tokens, offset = tonumber(ARGV[5]), {}, {}, 0
  while #ids < limit do
    local batch = redis.call('ZRANGE', ORDER, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, math.min(100, limit - #ids))
    if #batch == 0 then break end
    local counts = redis.call('HMGET', TOKENS, unpack(batch))
    local full = false
    for i = 1, #batch do
      local count = tonumber(counts[i]) or 0
      if count > budget then full = true break end
      budget = budget - count
      ids[#ids + 1] = batch[i]
      tokens[#tokens + 1] = count
    end
    if full then break end
    offset = offset + #batch
  end
  reply[4] = ''
  reply[5] = messagesJson(ids)
  for i = 1, #ids do
    reply[#reply + 1] = ids[i]
    reply[#reply + 1] = tokens[i]
  end
  return reply
end
local entries
if ARGV[2] == 'asc' then
  entries = redis.call('ZRANGE', ORDER, ARGV[3] == '' and '-inf' or '(' .. ARGV[3], '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1, 'WITHSCORES')
else
  entries = redis.call('ZRANGE', ORDER, ARGV[3] == '' and '+inf' or '(' .. ARGV[3], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1, 'WITHSCORES')
end
local ids = {}
for i = 1, math.min(#entries, limit * 2), 2 do ids[#ids + 1] = entries[i] end
reply[4] = #entries > limit * 2 and entries[limit * 2] or ''
reply[5] = messagesJson(ids)
return reply
`

/** ARGV messageId. { 'OK', tag, message JSON }, or { 'MESSAGE_NOT_FOUND', tag }. */
export const readMessage = `${existingInReach}
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local body = redis.call('HGET', BODIES, ARGV[1])
if not body then return {'MESSAGE_NOT_FOUND', tagOf(current[5], version)} end
return {'OK', tagOf(current[5], version), body}
`

/**
 * ARGV expectedTag, now, ttlMs, messageId, message JSON, tokens. Compare-and-set of one
 * message on the conversation's tag (the edit is merged in Node, as for PATCH).
 */
export const replaceMessage = `${existingInReach}
if tagOf(current[5], version) ~= ARGV[1] then return {'CONFLICT'} end
if redis.call('HEXISTS', BODIES, ARGV[4]) == 0 then return {'MESSAGE_NOT_FOUND'} end
local updatedAt = writeTime(tonumber(ARGV[2]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[3])
redis.call('HSET', BODIES, ARGV[4], ARGV[5])
redis.call('HSET', TOKENS, ARGV[4], ARGV[6])
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
refresh(expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[4], current[5] or '0'}
`

/** ARGV now, ttlMs, ifMatch, messageId. The id stays in the ids set, so it stays used. */
export const deleteMessage = `${existingInReach}
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
if redis.call('ZREM', ORDER, ARGV[4]) == 0 then return {'MESSAGE_NOT_FOUND'} end
redis.call('HDEL', BODIES, ARGV[4])
redis.call('HDEL', TOKENS, ARGV[4])
local updatedAt = writeTime(tonumber(ARGV[1]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[2])
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', tonumber(current[3]) - 1)
refresh(expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[4], current[5] or '0'}
`

/**
 * ARGV expectedTag, n, ids…, messages…, tokens…. Moves a conversation from the message list
 * of the release before to the current layout, with the token counts Node took. Neither the
 * version nor a TTL moves: it is the same conversation, stored another way.
 */
export const migrateMessages = `${existing}
if tagOf(current[5], version) ~= ARGV[1] then return {'CONFLICT'} end
if redis.call('EXISTS', LEGACY) == 0 then return {'OK'} end
local n = tonumber(ARGV[2])
local expiresAt = redis.call('PEXPIRETIME', DOC)
redis.call('DEL', ORDER, BODIES, TOKENS)
push(0, messageArgs(2, n))
redis.call('DEL', LEGACY)
redis.call('HSET', DOC, 'seq', n, 'count', n)
if expiresAt > 0 then
  for _, key in ipairs({ ORDER, BODIES, TOKENS, IDS }) do redis.call('PEXPIREAT', key, expiresAt) end
end
return {'OK'}
`
