-- uses: helpers, events
-- KEYS doc, wf. ARGV ifMatch, reach.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if not reachable(KEYS[1]) then return {'OUT_OF_REACH'} end
local current = redis.call('HMGET', KEYS[2], 'version', 'inc')
local version = tonumber(current[1])
if not version then return {'WORKFLOW_NOT_FOUND'} end
if not matches(ARGV[1], tagOf(current[2], version)) then return {'PRECONDITION'} end
redis.call('DEL', KEYS[2])
local conversation = redis.call('HMGET', KEYS[1], 'inc', 'version', 'expiresAt')
return {'OK', conversation[1] or '0', emit(KEYS[1], conversation[1] or '0', 'workflow_state.deleted', conversation[2], '{}', conversation[3])}
