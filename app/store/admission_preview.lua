-- Admission's checks for one delivery, read-only (after admission_checks.lua):
-- {with dedupe, without dedupe} (the tester reports a duplicate but still shows what
-- admission would decide next).
-- KEYS: dedupe, suppression list, throttle ('' = none).  ARGV: recipient ('' = none), the
-- guard's input as JSON (as admission gets it), now ms.
local without_dedupe = check(false, '', '', 0, KEYS[2], ARGV[1], KEYS[3], 0)
if without_dedupe[1] == 'pass' then
  without_dedupe = guard_check(cjson.decode(ARGV[2]), tonumber(ARGV[3])) or without_dedupe
end
return {check(false, '', KEYS[1], 0, KEYS[2], ARGV[1], KEYS[3], 0), without_dedupe}
