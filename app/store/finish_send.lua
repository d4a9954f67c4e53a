-- The worker's last step for a delivery, atomically (after json_input.lua, history.lua and
-- transition.lua): record the outcome, index the Twilio SID, park a retry, free the
-- throttle window (compare-and-delete), suppress a number Twilio says opted out, and
-- acknowledge the queue entry — last, so that a step failing half-way leaves the entry
-- pending: it is reclaimed, and begin_send.lua finds the recorded outcome ("done").
-- KEYS: record, stream, SID key, delayed sends, throttle, suppression list ('' = skip each)
-- ARGV: id, new status, now ms, status index prefix, history detail ('' = none), group,
--       entry id, retention s, retry due ms, recipient, suppression value, then
--       field/value pairs to set.
if redis.call('EXISTS', KEYS[1]) == 1 then
  transition(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], {unpack(ARGV, 12)})
end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[8]) end
if KEYS[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1]) end
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
if KEYS[6] ~= '' then redis.call('HSETNX', KEYS[6], ARGV[10], ARGV[11]) end
redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
return 1
