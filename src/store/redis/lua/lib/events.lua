-- A conversation's events, written by the script of the change they describe, in the
-- conversation's slot: an event exists if and only if its change committed. The log of one
-- incarnation is a stream, <doc>:events:<incarnation>, whose entry ids are '<seq>-0', seq
-- counting the conversation's events (field ev of its hash); it keeps the newest
-- EVENTS_RETAINED and lives as long as the conversation. Each event is also published on
-- the shard channel <doc>:live (same slot), to wake the instances whose followers wait.
-- An entry holds t (type), v (the conversation's version after the change) and d (the
-- type's fields as a JSON object: see src/store/events.ts).
local function emit (doc, incarnation, kind, version, data, expiresAt)
  local seq = redis.call('HINCRBY', doc, 'ev', 1)
  local log = doc .. ':events:' .. incarnation
  redis.call('XADD', log, 'MAXLEN', '{{EVENTS_RETAINED}}', seq .. '-0', 't', kind, 'v', version, 'd', data)
  if expiresAt then redis.call('PEXPIREAT', log, expiresAt) end
  redis.call('SPUBLISH', doc .. ':live', incarnation .. '\n' .. seq .. '\n' .. kind .. '\n' .. version .. '\n' .. data)
  return seq
end

-- The position of the newest event of a conversation (0: none yet).
local function lastEvent (doc)
  return tonumber(redis.call('HGET', doc, 'ev')) or 0
end

-- The fields of a message event: the message's stored JSON, as it is.
local function messageData (json)
  return '{"message":' .. json .. '}'
end

-- The fields of a conversation.updated event: the stored record, which Node turns into the
-- conversation without its messages (src/store/redis/event-data.ts).
local function conversationData (doc)
  local fields = redis.call('HMGET', doc, 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
  for i = 1, 9 do fields[i] = fields[i] or '' end
  return '{"record":' .. cjson.encode(fields) .. '}'
end

-- Ends a conversation's log: a last conversation.deleted event, kept for a minute (or until
-- the conversation's own expiry, if that is sooner) for followers that resume just after.
local function emitDeleted (doc, incarnation, version)
  local seq = emit(doc, incarnation, 'conversation.deleted', version, '{}')
  redis.call('PEXPIRE', doc .. ':events:' .. incarnation, 60000)
  return seq
end
