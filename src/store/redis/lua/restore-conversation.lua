-- uses: conversation, user-cap, events
-- KEYS the conversation's seven, and on a single Redis with a per-user cap the owner's
-- index (KEYS[8]).
-- ARGV mode ('create', 'skip' or 'replace'), now, ttlMs (the one this write uses), userId,
-- body, incarnation, tenantId, own TTL in ms ('' for the service's), createdAt ('' for the
-- write time), updatedAt (kept when this write creates it), workflow state body ('' for
-- none), its incarnation, n, ids…, messages…, tokens…, cap (see lib/user-cap.lua), reach.
-- A whole conversation in one write, as a fork or an import writes it: a new incarnation
-- at version 1, with nothing left of what was under its id before. It lives its whole TTL
-- from now.
local now, ttl, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[13])
local current = redis.call('HMGET', DOC, 'version', 'userId', 'updatedAt', 'inc')
if current[1] then
  if ARGV[1] == 'create' then return {'EXISTS'} end
  if ARGV[1] == 'skip' then return {'SKIPPED'} end
  if not reachable(DOC) then return {'OUT_OF_REACH'} end
  if current[2] ~= ARGV[4] then return {'USER_MISMATCH'} end
end
local updatedAt = current[1] and writeTime(now, current[3]) or tonumber(ARGV[10])
local expiresAt = math.max(updatedAt, now) + ttl
local createdAt = ARGV[9] ~= '' and ARGV[9] or tostring(updatedAt)
-- A replacement is a new incarnation: the followers of the one before see it deleted.
if current[1] then emitDeleted(DOC, current[4] or '0', current[1]) end
redis.call('DEL', DOC, ORDER, BODIES, TOKENS, IDS, WF, LEGACY)
push(0, messageArgs(13, n))
redis.call('HSET', DOC, 'body', ARGV[5], 'userId', ARGV[4], 'tenantId', ARGV[7], 'createdAt', createdAt, 'updatedAt', updatedAt,
  'expiresAt', expiresAt, 'version', 1, 'count', n, 'seq', n, 'inc', ARGV[6], 'sv', '{{SCHEMA_STAMP}}')
ownTtl(ARGV[8])
if ARGV[11] ~= '' then
  redis.call('HSET', WF, 'body', ARGV[11], 'version', 1, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'inc', ARGV[12])
end
refresh(expiresAt)
if not current[1] then capUser(ARGV[#ARGV - 2], ARGV[4], updatedAt, expiresAt, now) end
return {'OK', updatedAt, expiresAt, tonumber(createdAt), current[1] and 1 or 0}
