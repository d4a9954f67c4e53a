-- Admission's checks for one delivery, read-only (after admission_checks.lua):
-- {with dedupe, without dedupe} (the tester reports a duplicate but still shows what
-- admission would decide next).
-- KEYS: dedupe, suppression list, throttle ('' = none), then the skipped dedupe buckets.
-- ARGV: recipient ('' = none), the mark's field in the buckets.
local buckets = {unpack(KEYS, 4)}
return {check(false, '', KEYS[1], buckets, ARGV[2], KEYS[2], ARGV[1], KEYS[3], 0),
        check(false, '', '', buckets, ARGV[2], KEYS[2], ARGV[1], KEYS[3], 0)}
