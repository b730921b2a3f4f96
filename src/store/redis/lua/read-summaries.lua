-- uses: fingerprint
-- KEYS the documents of some conversations, on a Redis that is not a cluster (they are in
-- many slots). ARGV the fingerprint known for each ('' for none). For each: 'SAME' when it
-- still has that fingerprint, else the fields HMGET reads for a summary (all false for a
-- conversation that is gone) and its fingerprint.
local out = {}
for i = 1, #KEYS do
  local same = false
  if ARGV[i] ~= '' then
    local tag = redis.call('HMGET', KEYS[i], 'inc', 'version', 'sv')
    same = tag[2] and fingerprintOf(KEYS[i], tag[1], tag[2], tag[3]) == ARGV[i]
  end
  if same then
    out[i] = 'SAME'
  else
    local fields = redis.call('HMGET', KEYS[i], 'body', 'userId', 'createdAt', 'updatedAt', 'expiresAt', 'version', 'count', 'inc', 'sv')
    fields[10] = fields[6] and fingerprintOf(KEYS[i], fields[8], fields[6], fields[9]) or ''
    out[i] = fields
  end
end
return out
