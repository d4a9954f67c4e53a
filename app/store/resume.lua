-- Resumes a destination: removes its
-- pause, waives the rest of the day's budget when the budget paused it (an operator who
-- resumes means "keep sending today"), and makes its held deliveries due now (only those
-- still waiting in the delayed set: XX).
-- KEYS: pauses, delayed sends, the destination's held set.  ARGV: destination id, now ms.
-- Returns {the pause JSON ('' = none), deliveries made due}.
local raw = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HDEL', KEYS[1], ARGV[1])
if raw ~= '' then
  local budget_key = cjson.decode(raw)['budget_key']
  if type(budget_key) == 'string' and redis.call('EXISTS', budget_key) == 1 then
    redis.call('HSET', budget_key, 'waived', ARGV[2])
  end
end
local released = 0
local held = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #held, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #held) do
    chunk[#chunk + 1] = ARGV[2]
    chunk[#chunk + 1] = held[j]
  end
  released = released + redis.call('ZADD', KEYS[2], 'XX', 'CH', unpack(chunk))
end
redis.call('DEL', KEYS[3])
return {raw, released}
