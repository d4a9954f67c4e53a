-- A delivery that became final without sending (opted out, canceled) lets go of what it
-- held while pending: its dedupe mark counts down from now, its window is freed — each
-- only if it is still this delivery's (compare-and-set) — and it leaves its recipient's
-- frequency caps.
-- KEYS: dedupe, throttle, cap set ('' = none each).  ARGV: id, dedupe ms.
if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if KEYS[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
