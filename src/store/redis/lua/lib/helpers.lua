-- uses: reach
-- The entity tag of a version, as tagOf (conversation-rules.ts) builds it. Records from
-- before incarnations existed have none: they count as incarnation '0'.
local function tagOf (incarnation, version)
  if not version then return nil end
  return (incarnation or '0') .. '.' .. version
end

-- ifMatch: '' (no condition), '*', or tags separated by commas (tags never hold one).
local function matches (ifMatch, tag)
  if ifMatch == '' then return true end
  if not tag then return false end
  if ifMatch == '*' then return true end
  for candidate in string.gmatch(ifMatch, '[^,]+') do
    if candidate == tag then return true end
  end
  return false
end

-- updatedAt never goes backwards, whatever the caller's clock says.
local function writeTime (now, previous)
  if previous and tonumber(previous) > now then return tonumber(previous) end
  return now
end
