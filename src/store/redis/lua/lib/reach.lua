-- Whether the caller may reach the conversation whose document is doc. The last two ARGV
-- of a script that uses it are the caller's tenants, separated by spaces ('' for every
-- tenant), and its user ('' for any): see reachArgs (commands.ts).
local function reachable (doc)
  local tenants, user = ARGV[#ARGV - 1], ARGV[#ARGV]
  if tenants == '' and user == '' then return true end
  local owner = redis.call('HMGET', doc, 'userId', 'tenantId')
  if user ~= '' and owner[1] ~= user then return false end
  if tenants == '' then return true end
  local tenant = owner[2]
  if not tenant then
    -- Written by a release before the tenant had a field of its own: it is in the body.
    local ok, body = pcall(cjson.decode, redis.call('HGET', doc, 'body') or '')
    tenant = ok and type(body) == 'table' and body.tenantId or nil
  end
  for candidate in string.gmatch(tenants, '%S+') do
    if candidate == tenant then return true end
  end
  return false
end
