-- uses: existing-in-reach, events
-- ARGV messageId. { 'OK', tag, message JSON, when its stream last grew ('' when it is not
-- in_progress) }, or { 'MESSAGE_NOT_FOUND', tag }.
if redis.call('EXISTS', LEGACY) == 1 then return {'LEGACY'} end
local body = redis.call('HGET', BODIES, ARGV[1])
if not body then return {'MESSAGE_NOT_FOUND', tagOf(current[5], version), lastEvent(DOC)} end
return {'OK', tagOf(current[5], version), body, redis.call('HGET', DOC, 'a:' .. ARGV[1]) or '', lastEvent(DOC)}
