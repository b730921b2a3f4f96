-- uses: user-index
-- KEYS index. ARGV mode ('NX' or 'GT'), score, id, expiresAt. Adds or moves a user's index
-- entry and keeps the index alive at least as long as the conversation.
moveIndexEntry(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
