-- uses: conversation, user-cap, events
-- KEYS the conversation's seven, and on a single Redis with a per-user cap the owner's
-- index (KEYS[8]). ARGV mode, now, ttlMs (the one this write uses), ifMatch, ifNoneMatch,
-- userId, body, newIncarnation (used when this write creates the conversation), tenantId,
-- own TTL in ms ('' for the service's), n, ids…, messages…, tokens…, cap (see
-- lib/user-cap.lua), reach.
local now, ttl, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[11])
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
if version then endStreams(false) end
-- A new conversation never inherits state left under its id.
if not version then redis.call('DEL', WF) end
push(0, messageArgs(11, n))
redis.call('HSET', DOC, 'body', ARGV[7], 'userId', ARGV[6], 'tenantId', ARGV[9], 'createdAt', createdAt, 'updatedAt', updatedAt,
  'expiresAt', expiresAt, 'version', (version or 0) + 1, 'count', n, 'seq', n, 'inc', incarnation, 'sv', '{{SCHEMA_STAMP}}')
ownTtl(ARGV[10])
refresh(expiresAt)
-- A replacement is one conversation.updated event (its messages are read again); a create has none.
local ev = 0
if version then ev = emit(DOC, incarnation, 'conversation.updated', version + 1, conversationData(DOC), expiresAt) end
if not version then capUser(ARGV[#ARGV - 2], ARGV[6], updatedAt, expiresAt, now) end
return {'OK', (version or 0) + 1, updatedAt, expiresAt, tonumber(createdAt), version and 0 or 1, incarnation, ev}
