-- uses: existing-in-reach, events
-- ARGV expectedTag, now, ttlMs (the service's), messageId, message JSON, tokens, streaming ('1'
-- while the message stays in_progress; else its stream ends). Compare-and-set of one message on
-- the conversation's tag (the edit is merged in Node, as for PATCH).
if tagOf(current[5], version) ~= ARGV[1] then return {'CONFLICT'} end
if redis.call('HEXISTS', BODIES, ARGV[4]) == 0 then return {'MESSAGE_NOT_FOUND'} end
local updatedAt = writeTime(tonumber(ARGV[2]), current[2])
local expiresAt = updatedAt + (tonumber(current[7]) or tonumber(ARGV[3]))
redis.call('HSET', BODIES, ARGV[4], ARGV[5])
redis.call('HSET', TOKENS, ARGV[4], ARGV[6])
if ARGV[7] ~= '1' then endStream(ARGV[4]) end
redis.call('HSET', DOC, 'updatedAt', updatedAt, 'expiresAt', expiresAt, 'version', version + 1)
refresh(expiresAt)
local ev = emit(DOC, current[5] or '0', 'message.updated', version + 1, messageData(ARGV[5]), expiresAt)
return {'OK', version + 1, updatedAt, expiresAt, current[4], current[5] or '0', ev, conversationData(DOC)}
