// Lua scripts that make each conversation write atomic inside Redis. Every script touches
// only the keys of one conversation (one hash slot, see redis-keys.ts), so they run
// unchanged on Redis Cluster. Timestamps are milliseconds since the epoch. Conversation
// scripts take the conversation's seven keys (conversationKeyList); the messages' own
// scripts are in redis-message-scripts.ts.
//
// Scripts answer { status, ... }: 'OK' or one of 'EXISTS', 'NOT_FOUND', 'WORKFLOW_NOT_FOUND',
// 'MESSAGE_NOT_FOUND', 'PRECONDITION', 'USER_MISMATCH', 'TOO_MANY', 'CONFLICT', 'BAD_CURSOR',
// 'OUT_OF_REACH' (the caller may not see the conversation: answered as NOT_FOUND) and
// 'LEGACY' (the messages are still in the list of the release before: migrate first).
// Scripts that check reach take the caller's reach as their last two ARGV (redis-lua.ts).

import { conversationHelpers as conversation, fingerprint, helpers, reach } from './redis-lua.js'
import { SCHEMA_STAMP } from './redis-records.js'

/**
 * ARGV mode, now, ttlMs, ifMatch, ifNoneMatch, userId, body, newIncarnation (used when this
 * write creates the conversation), tenantId, n, ids…, messages…, tokens…, reach.
 */
export const writeConversation = `${conversation}
local now, ttl, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[10])
local current = redis.call('HMGET', DOC, 'version', 'userId', 'updatedAt', 'createdAt', 'inc')
local version = tonumber(current[1])
if version and ARGV[1] == 'create' then return {'EXISTS'} end
if version and not reachable(DOC) then return {'OUT_OF_REACH'} end
if version and ARGV[5] == '1' then return {'PRECONDITION'} end
if not matches(ARGV[4], tagOf(current[5], version)) then return {'PRECONDITION'} end
if version and current[2] ~= ARGV[6] then return {'USER_MISMATCH'} end
local updatedAt = writeTime(now, current[3])
local expiresAt = updatedAt + ttl
local createdAt = current[4] or tostring(now)
local incarnation = version and (current[5] or '0') or ARGV[8]
redis.call('DEL', ORDER, BODIES, TOKENS, IDS, LEGACY)
-- A new conversation never inherits state left under its id.
if not version then redis.call('DEL', WF) end
push(0, messageArgs(10, n))
redis.call('HSET', DOC, 'body', ARGV[7], 'userId', ARGV[6], 'tenantId', ARGV[9], 'createdAt', createdAt, 'updatedAt', updatedAt,
  'expiresAt', expiresAt, 'version', (version or 0) + 1, 'count', n, 'seq', n, 'inc', incarnation, 'sv', '${SCHEMA_STAMP}')
refresh(expiresAt)
return {'OK', (version or 0) + 1, updatedAt, expiresAt, tonumber(createdAt), version and 0 or 1, incarnation}
`

/**
 * ARGV expectedTag, now, ttlMs, body. Compare-and-set of the body on the tag, so a
 * conversation deleted and created again meanwhile is a conflict too; answers the messages,
 * so the caller's answer matches the version it wrote.
 */
export const replaceBody = `${conversation}
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'inc')
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if tagOf(current[4], version) ~= ARGV[1] then return {'CONFLICT'} end
local updatedAt = writeTime(tonumber(ARGV[2]), current[2])
local expiresAt = updatedAt + tonumber(ARGV[3])
redis.call('HSET', DOC, 'body', ARGV[4], 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
refresh(expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[3], messagesByRank(0, -1)}
`

/**
 * ARGV now, ttlMs, ifMatch, maxMessages, n, ids…, messages…, tokens…, reach. Answers the owner and
 * new times too, so the caller can move the index entry at once.
 */
export const appendMessages = `${conversation}
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
`

/** ARGV ifMatch, userId ('' for any owner), reach. */
export const deleteConversation = `${conversation}
local current = redis.call('HMGET', DOC, 'version', 'userId', 'updatedAt', 'inc')
local version = tonumber(current[1])
if not version or (ARGV[2] ~= '' and current[2] ~= ARGV[2]) then return {'NOT_FOUND'} end
if not reachable(DOC) then return {'OUT_OF_REACH'} end
if not matches(ARGV[1], tagOf(current[4], version)) then return {'PRECONDITION'} end
redis.call('DEL', DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY)
return {'OK', current[2], tonumber(current[3])}
`

/**
 * ARGV last ('' for every message, else only the newest N), known fingerprint ('' for
 * none). One consistent snapshot of a conversation with the messages asked for, in either
 * layout, and its fingerprint; or just 'SAME' when the fingerprint is the one known.
 */
export const readConversation = `${conversation}
${fingerprint}
local fields = redis.call('HMGET', DOC, 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
if not fields[6] then return {'NOT_FOUND'} end
local fingerprint = fingerprintOf(DOC, fields[8], fields[6], fields[9])
if fingerprint ~= '' and fingerprint == ARGV[2] then return {'SAME'} end
local messages = '[]'
if ARGV[1] == '' then messages = messagesByRank(0, -1)
elseif tonumber(ARGV[1]) > 0 then messages = messagesByRank(-tonumber(ARGV[1]), -1) end
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], messages, fields[8] or '0', fingerprint}
`

/**
 * KEYS the documents of some conversations, on a Redis that is not a cluster (they are in
 * many slots). ARGV the fingerprint known for each ('' for none). For each: 'SAME' when it
 * still has that fingerprint, else the fields HMGET reads for a summary (all false for a
 * conversation that is gone) and its fingerprint.
 */
export const readSummaries = `${fingerprint}
local out = {}
for i = 1, #KEYS do
  local same = false
  if ARGV[i] ~= '' then
    local tag = redis.call('HMGET', KEYS[i], 'inc', 'version', 'sv')
    same = tag[2] and fingerprintOf(KEYS[i], tag[1], tag[2], tag[3]) == ARGV[i]
  end
  if same then
    out[i] = 'SAME'
  else
    local fields = redis.call('HMGET', KEYS[i], 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
    fields[10] = fields[6] and fingerprintOf(KEYS[i], fields[8], fields[6], fields[9]) or ''
    out[i] = fields
  end
end
return out
`

/** KEYS doc, wf. ARGV reach. */
export const readWorkflowState = `${reach}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
local fields = redis.call('HMGET', KEYS[2], 'body', 'version', 'updatedAt', 'expiresAt', 'inc')
if not fields[2] then return {'WORKFLOW_NOT_FOUND'} end
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5] or '0'}
`

/**
 * KEYS doc, wf. ARGV now, ttlMs, ifMatch, ifNoneMatch, body, newIncarnation (used when this
 * write creates the state), reach. The conversation is left as it is.
 */
export const writeWorkflowState = `${helpers}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
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

/** KEYS doc, wf. ARGV ifMatch, reach. */
export const deleteWorkflowState = `${helpers}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
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
