-- KEYS index. ARGV mode ('NX' or 'GT'), score, id, expiresAt. Adds or moves a user's index
-- entry and keeps the index alive at least as long as the conversation.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
return 1
