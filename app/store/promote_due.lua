-- Move due retries and held messages back to the send stream atomically, so none is lost
-- or doubled between the two. KEYS: delayed sends, stream.  ARGV: now ms, limit.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'delivery', id)
end
return #due
