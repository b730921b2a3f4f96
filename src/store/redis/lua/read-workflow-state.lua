-- uses: reach, events
-- KEYS doc, wf. ARGV reach.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
local fields = redis.call('HMGET', KEYS[2], 'body', 'version', 'updatedAt', 'expiresAt', 'inc')
if not fields[2] then return {'WORKFLOW_NOT_FOUND'} end
-- And where the conversation's event feed stands: its incarnation and newest event.
return {'OK', fields[1], fields[2], fields[3], fields[4], fields[5] or '0', redis.call('HGET', KEYS[1], 'inc') or '0', lastEvent(KEYS[1])}
