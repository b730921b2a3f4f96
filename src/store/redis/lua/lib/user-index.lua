-- Adds or moves a user's index entry (mode 'NX' or 'GT') and keeps the index alive at least
-- as long as the conversation. PEXPIREAT GT leaves a key without a TTL as it is, which is
-- only the case for an index this call has just created.
local function moveIndexEntry (index, mode, score, id, expiresAt)
  redis.call('ZADD', index, mode, score, id)
  if redis.call('PEXPIREAT', index, expiresAt, 'GT') == 0 and redis.call('PTTL', index) == -1 then
    redis.call('PEXPIREAT', index, expiresAt)
  end
end
