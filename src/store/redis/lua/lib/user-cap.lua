-- uses: user-index, events, user-feed
-- The per-user cap inside a create, on a single Redis, where a script may reach every key:
-- the new conversation's index entry (KEYS[8]) moves to its write time, then the user's
-- least recently updated conversations are deleted, with all they own, down to the cap.
-- spec: '' (no cap in this script) or '<cap> <staleAfterMs>'. Entries whose conversation is
-- gone do not count; those older than staleAfterMs are pruned (younger ones may be creates
-- still in flight). The keys of a conversation are those of keys.ts.
local function capUser (spec, userId, updatedAt, expiresAt, now)
  if spec == '' or not KEYS[8] then return end
  local cap, staleAfterMs = string.match(spec, '^(%d+) (%d+)$')
  local index, id = KEYS[8], string.match(DOC, '{(.*)}$')
  moveIndexEntry(index, 'GT', updatedAt, id, expiresAt)
  if redis.call('ZCARD', index) <= tonumber(cap) then return end
  local docPrefix = string.sub(DOC, 1, #DOC - #id - 2)
  local entries = redis.call('ZRANGE', index, 0, -1, 'WITHSCORES')
  local live = {}
  for i = 1, #entries, 2 do
    local doc = docPrefix .. '{' .. entries[i] .. '}'
    if redis.call('HGET', doc, 'userId') == userId then live[#live + 1] = doc
    elseif now - tonumber(entries[i + 1]) > tonumber(staleAfterMs) then redis.call('ZREM', index, entries[i]) end
  end
  for i = 1, #live - tonumber(cap) do
    local doc = live[i]
    local victim = redis.call('HMGET', doc, 'inc', 'version', 'body', 'updatedAt')
    emitDeleted(doc, victim[1] or '0', victim[2])
    redis.call('DEL', doc, doc .. ':order', doc .. ':bodies', doc .. ':tokens', doc .. ':message-ids', doc .. ':workflow', doc .. ':messages')
    redis.call('ZREM', index, string.match(doc, '{(.*)}$'))
    emitUserEvent(index, 'conversation.deleted', string.match(doc, '{(.*)}$'), victim[2], deletedData(victim[3]), victim[4])
  end
end
