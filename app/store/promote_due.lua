-- Move due retries and held messages back to the send stream atomically, so none is lost
-- or doubled between the two. Queued first, then taken off the delayed set: failing
-- half-way, a delivery is at worst in both (begin_send.lua skips a second send), never in
-- neither. KEYS: delayed sends, stream.  ARGV: now ms, limit.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'delivery', id)
  redis.call('ZREM', KEYS[1], id)
end
return #due
