-- Gives back what a delivery counted in its destination's budget (its `budget` field:
-- "<budget key>|<segments>|<cost>", written by admit.lua), once: the field goes with it.
-- Called when a send fails for good (nothing was sent, nothing is billed).
-- KEYS: record.  Returns 1 when something was given back.
local charge = redis.call('HGET', KEYS[1], 'budget')
if not charge then return 0 end
local key, segments, cost = string.match(charge, '^(.*)|(%d+)|(%d+)$')
redis.call('HDEL', KEYS[1], 'budget')
if not key or redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HINCRBY', key, 'segments', -tonumber(segments))
if tonumber(cost) > 0 then redis.call('HINCRBY', key, 'cost', -tonumber(cost)) end
return 1
