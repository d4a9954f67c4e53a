-- The worker's last step for a delivery, atomically (after json_input.lua, history.lua and
-- transition.lua): record the outcome, index the Twilio SID, park a retry, set the
-- lifetimes, settle the throttle window, suppress a number Twilio says opted out, and
-- acknowledge the queue entry — last, so that a step failing half-way leaves the entry
-- pending: it is reclaimed, and begin_send.lua finds the recorded outcome ("done").
-- An answer for an attempt that is no longer the delivery's last (it was resolved and
-- tried again meanwhile) only indexes its SID.
-- KEYS: record, stream, SID key, delayed sends, throttle, suppression list, dedupe,
--       cap set ('' = skip each)
-- ARGV: 1 id, 2 new status, 3 now ms, 4 status index prefix, 5 history detail ('' = none),
--       6 group, 7 entry id, 8 retention s, 9 retry due ms, 10 recipient,
--       11 suppression value, 12 attempt ('' = any), 13 'final' | 'pending',
--       14 throttle: 'anchor' (a text went out: the window runs from now) | 'release'
--       (surely not sent) | 'keep', 15 window ms, 16 dedupe ms, then field/value pairs.
local attempts = redis.call('HGET', KEYS[1], 'attempts')
local latest = attempts and (ARGV[12] == '' or attempts == ARGV[12])
if latest then
  transition(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], {unpack(ARGV, 17)})
  -- Nothing pending expires; retention (and the dedupe time) count from a final status.
  if ARGV[13] == 'final' then
    redis.call('EXPIRE', KEYS[1], ARGV[8])
    if KEYS[7] ~= '' and redis.call('GET', KEYS[7]) == ARGV[1] then
      redis.call('PEXPIRE', KEYS[7], ARGV[16])
    end
  else
    redis.call('PERSIST', KEYS[1])
  end
  if KEYS[5] ~= '' then
    local holder = redis.call('GET', KEYS[5])
    if ARGV[14] == 'anchor' and tonumber(ARGV[15]) > 0 then
      redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[15])
    elseif holder == ARGV[1] and ARGV[14] == 'release' then
      redis.call('DEL', KEYS[5])
    elseif holder == ARGV[1] and ARGV[13] == 'final' and tonumber(ARGV[15]) > 0 then
      redis.call('PEXPIRE', KEYS[5], ARGV[15])
    end
  end
  if KEYS[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1]) end
  -- A text surely not sent does not count against its recipient's frequency caps.
  if KEYS[8] ~= '' and ARGV[14] == 'release' then redis.call('ZREM', KEYS[8], ARGV[1]) end
end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[8]) end
if KEYS[6] ~= '' then redis.call('HSETNX', KEYS[6], ARGV[10], ARGV[11]) end
redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
return 1
