-- uses: user-feed
-- KEYS index. The user's feed's epoch and its events so far, starting the feed when it has
-- none, so that a follower who arrives first knows the epoch its events will have.
local feed = userFeedOf(KEYS[1])
local epoch = userFeedEpoch(feed, KEYS[1])
return {epoch, tonumber(redis.call('HGET', feed, 'ev')) or 0}
