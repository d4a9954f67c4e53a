-- Holds a delivery of a paused destination, neither sent nor failed (after json_input.lua,
-- history.lua, transition.lua and destination_gate.lua): status `held`, parked in the
-- delayed set until the pause ends by itself or for `recheck` ms (whichever is first), and
-- listed in the destination's held set, which resume.lua makes due at once. The queue
-- entry is acknowledged last (a step failing half-way leaves it pending: reclaimed).
-- Nothing of it expires while held. An answer for an attempt that is no longer the
-- delivery's last only acknowledges the entry.
-- KEYS: record, stream, delayed sends, pauses, the destination's held set.
-- ARGV: 1 id, 2 now ms, 3 status index prefix, 4 group, 5 entry id, 6 recheck ms,
--       7 attempt ('' = any), 8 history detail, then field/value pairs to set.
local attempts = redis.call('HGET', KEYS[1], 'attempts')
-- ('destination': a record from before the short field names)
local destination = redis.call('HGET', KEYS[1], 'dest') or redis.call('HGET', KEYS[1], 'destination')
if destination and (ARGV[7] == '' or attempts == ARGV[7]) then
  local now = tonumber(ARGV[2])
  local due = now  -- resumed meanwhile: due at once
  local pause = active_pause(KEYS[4], destination, ARGV[2])
  if pause then
    due = now + tonumber(ARGV[6])
    local ends = cjson.decode(pause)['until']
    if type(ends) == 'number' and ends < due then due = ends end
  end
  transition(KEYS[1], ARGV[1], 'held', ARGV[2], ARGV[3], ARGV[8], {unpack(ARGV, 9)})
  redis.call('PERSIST', KEYS[1])
  redis.call('ZADD', KEYS[3], due, ARGV[1])
  redis.call('ZADD', KEYS[5], due, ARGV[1])
  redis.call('PEXPIRE', KEYS[5], due - now + 86400000)
end
redis.call('XACK', KEYS[2], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
return 1
