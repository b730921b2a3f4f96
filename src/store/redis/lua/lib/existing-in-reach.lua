-- uses: existing
if not reachable(DOC) then return {'OUT_OF_REACH'} end
