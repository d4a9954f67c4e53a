-- Sender pacing, shared by every worker: a GCRA schedule per sender (the theoretical
-- arrival time `tat` of its next segment) and an AIMD factor on its declared rate.
-- KEYS: the sender's pace state (hash: tat ms, factor, cut ms), declared rates (hash:
--       sender → segments per second, written from `senders:`).
-- ARGV: 1 'reserve' | 'slow', 2 sender, 3 rate when not declared, 4 now ms, then
--   reserve: 5 segments, 6 deadline ms ('' = none), 7 successes since the last call,
--            8 factor added per success, 9 lease ms: reserve this long of the rate at once
--            when it holds at least twice `segments` (a fast sender), else `segments`
--   slow:    5 factor multiplier, 6 factor floor, 7 ms between two cuts at least
-- Returns reserve: {slot ms (-1: refused, its slot would be past the deadline; nothing
--   reserved), rate in milli-segments per second, the slot it would have had, segments
--   reserved};
--   slow: {rate in milli-segments per second, 1 when this call cut it (0: cut lately)}.
local declared = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '') or tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tat', 'factor', 'cut')
local now = tonumber(ARGV[4])
local tat = math.max(tonumber(state[1] or '') or 0, now)
local factor = tonumber(state[2] or '') or 1
-- The state outlives its schedule by an hour: an idle sender starts again at full rate.
local function keep(until_ms)
  redis.call('PEXPIRE', KEYS[1], math.floor(until_ms - now) + 3600000)
end
if ARGV[1] == 'slow' then
  local cut = 0
  local last = tonumber(state[3] or '')
  if not last or now - last >= tonumber(ARGV[7]) then
    factor = math.max(tonumber(ARGV[6]), factor * tonumber(ARGV[5]))
    redis.call('HSET', KEYS[1], 'factor', string.format('%.6f', factor), 'cut', ARGV[4])
    keep(tat)
    cut = 1
  end
  return {math.floor(declared * factor * 1000), cut}
end
factor = math.min(1, factor + tonumber(ARGV[7]) * tonumber(ARGV[8]))
local rate = declared * factor
if ARGV[6] ~= '' and tat > tonumber(ARGV[6]) then
  return {-1, math.floor(rate * 1000), math.floor(tat), 0}
end
local segments = tonumber(ARGV[5])
local lease = math.floor(rate * tonumber(ARGV[9]) / 1000)
if lease >= 2 * segments then segments = lease end
local after = tat + segments * 1000 / rate
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', after),
           'factor', string.format('%.6f', factor))
keep(after)
return {math.floor(tat), math.floor(rate * 1000), math.floor(tat), segments}
