-- A claimed attempt that is not made after all (after json_input.lua, history.lua and
-- transition.lua): the worker found the message inside its quiet hours, or waiting for its
-- sender's pace. Undoes the attempt's count (it never left), moves the delivery to its
-- new status, and either parks it in the delayed set until `due` (queued or scheduled) or
-- makes it final unsent (skipped: its mark counts down, its window is freed); then
-- acknowledges the stream entry. Nothing happens to a delivery that has moved on (another
-- attempt, or not `sending`) but the acknowledgement.
-- KEYS: record, stream, delayed sends ('' = final), throttle ('' = none), dedupe ('' = none)
-- ARGV: 1 id, 2 status, 3 now ms, 4 status index prefix, 5 detail, 6 group, 7 entry id,
--       8 attempt, 9 due ms, 10 reason ('' = none), 11 paced ('' = none),
--       12 retention s (final), 13 dedupe ms (final)
if redis.call('HGET', KEYS[1], 'attempts') == ARGV[8]
   and redis.call('HGET', KEYS[1], 'status') == 'sending' then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  -- Its `sending` step stays in the history, which counts a sent delivery's attempts
  -- (records.py): say how many of those steps were not made.
  redis.call('HINCRBY', KEYS[1], 'unmade', 1)
  local extra = {}
  if ARGV[10] ~= '' then extra = {'reason', ARGV[10]} end
  if ARGV[11] ~= '' then extra[#extra + 1] = 'paced'; extra[#extra + 1] = ARGV[11] end
  transition(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], extra)
  if KEYS[3] ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[12])
    if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[1] then
      redis.call('PEXPIRE', KEYS[5], ARGV[13])
    end
    if KEYS[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[1] then
      redis.call('DEL', KEYS[4])
    end
  end
end
redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
return 1
