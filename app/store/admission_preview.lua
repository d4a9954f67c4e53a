-- Admission's checks for one delivery, read-only (after admission_checks.lua):
-- {with dedupe, without dedupe} (the tester reports a duplicate but still shows what
-- admission would decide next).
-- KEYS: dedupe, suppression list, throttle ('' = none).  ARGV: recipient ('' = none).
return {check(false, '', KEYS[1], 0, KEYS[2], ARGV[1], KEYS[3], 0),
        check(false, '', '', 0, KEYS[2], ARGV[1], KEYS[3], 0)}
