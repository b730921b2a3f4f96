-- A record's fingerprint, as fingerprintOf (records.ts) builds it: '' without the current stamp.
local function fingerprintOf (doc, incarnation, version, stamp)
  if stamp ~= '{{SCHEMA_STAMP}}' then return '' end
  return (incarnation or '0') .. '.' .. version .. '.' .. stamp .. '.' .. redis.call('HSTRLEN', doc, 'body')
end
