-- uses: window, user-index, events, user-feed
-- KEYS the conversation's seven, and on a single Redis the owner's index (KEYS[8]) when the
-- caller knows the owner. ARGV now, ttlMs (the service's: a conversation's own wins), ifMatch, maxMessages, window ('' for none,
-- 'tokens' or 'last'), its size, the most messages a token window holds, the owner the index belongs to, n, ids…, messages…,
-- tokens…, streams… ('' for a finished message; for an in_progress one '<bytes> <chars>': its
-- text's JSON length in bytes and its length in characters, see lib/conversation.lua), reach. Answers { 'OK', appended, skipped, version, count, updatedAt, expiresAt,
-- owner, incarnation, indexed (1: the index entry moved here), last event } and with a window
-- its messages JSON, then id, tokens, …. Each message added is a message.created event.
local now, n = tonumber(ARGV[1]), tonumber(ARGV[9])
local current = redis.call('HMGET', DOC, 'version', 'updatedAt', 'count', 'userId', 'inc', 'seq', 'ttl')
local ttl = tonumber(current[7]) or tonumber(ARGV[2])
local version = tonumber(current[1])
if not version then return {'NOT_FOUND'} end
if not reachable(DOC) then return {'OUT_OF_REACH'} end
if not matches(ARGV[3], tagOf(current[5], version)) then return {'PRECONDITION'} end
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local count = tonumber(current[3])
local seen, idList, jsonList, tokenList, streams = {}, {}, {}, {}, {}
for i = 1, n do
  local id = ARGV[9 + i]
  if not seen[id] and redis.call('SISMEMBER', IDS, id) == 0 then
    idList[#idList + 1] = id
    jsonList[#jsonList + 1] = ARGV[9 + n + i]
    tokenList[#tokenList + 1] = ARGV[9 + 2 * n + i]
    if ARGV[9 + 3 * n + i] ~= '' then streams[id] = ARGV[9 + 3 * n + i] end
  end
  seen[id] = true
end
local added = #idList
local reply
if added == 0 then
  reply = {'OK', 0, n, version, count, 0, 0, current[4], current[5] or '0', 0, lastEvent(DOC), ''}
else
  if count + added > tonumber(ARGV[4]) then return {'TOO_MANY'} end
  local updatedAt = writeTime(now, current[2])
  local expiresAt = updatedAt + ttl
  local seq = push(tonumber(current[6]) or 0, idList, jsonList, tokenList)
  for id, stream in pairs(streams) do
    local bytes, chars = string.match(stream, '^(%d+) (%d+)$')
    startStream(id, bytes, chars, now)
  end
  redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1, 'count', count + added, 'seq', seq)
  refresh(expiresAt)
  local ev
  for i = 1, added do ev = emit(DOC, current[5] or '0', 'message.created', version + 1, messageData(jsonList[i]), expiresAt) end
  local id = string.match(DOC, '{(.*)}$')
  local indexed = moveNamedOwnersEntry(ARGV[8], current[4], id, updatedAt, expiresAt)
  -- The owner's feed: written here with the entry, else by the step that moves it (the record is for that step).
  local record = conversationData(DOC)
  if indexed == 1 then emitUserEvent(KEYS[8], 'conversation.updated', id, version + 1, record, updatedAt) end
  reply = {'OK', added, n - added, version + 1, count + added, updatedAt, expiresAt, current[4], current[5] or '0', indexed, ev, indexed == 1 and '' or record}
end
if ARGV[5] == 'tokens' then return withWindow(reply, tokenWindow(tonumber(ARGV[6]), tonumber(ARGV[7]))) end
if ARGV[5] == 'last' then return withWindow(reply, lastWindow(tonumber(ARGV[6]))) end
return reply
