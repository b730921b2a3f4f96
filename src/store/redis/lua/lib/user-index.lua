-- Adds or moves a user's index entry (mode 'NX' or 'GT') and keeps the index alive at least
-- as long as the conversation. PEXPIREAT GT leaves a key without a TTL as it is, which is
-- only the case for an index this call has just created.
local function moveIndexEntry (index, mode, score, id, expiresAt)
  redis.call('ZADD', index, mode, score, id)
  if redis.call('PEXPIREAT', index, expiresAt, 'GT') == 0 and redis.call('PTTL', index) == -1 then
    redis.call('PEXPIREAT', index, expiresAt)
  end
end

-- On a single Redis, a write to a conversation moves its owner's index entry (KEYS[8]) in
-- the same script when the caller named the owner and it is the owner. Answers 1 when the
-- entry moved here, else 0 (the caller moves it after the script).
local function moveNamedOwnersEntry (named, owner, id, updatedAt, expiresAt)
  if not KEYS[8] or named ~= owner then return 0 end
  moveIndexEntry(KEYS[8], 'GT', updatedAt, id, expiresAt)
  return 1
end
