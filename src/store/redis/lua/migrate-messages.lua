-- uses: existing
-- ARGV expectedTag, n, ids…, messages…, tokens…. Moves a conversation from the message list
-- of the release before to the current layout, with the token counts Node took. Neither the
-- version nor a TTL moves: it is the same conversation, stored another way.
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
