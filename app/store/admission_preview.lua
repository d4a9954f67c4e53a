-- Admission's checks for one delivery, read-only (after admission_checks.lua and
-- destination_gate.lua): {with dedupe, without dedupe, the destination's gate} (the tester
-- reports a duplicate but still shows what admission would decide next).
-- KEYS: dedupe, suppression list, throttle ('' = none), pauses, budget ('' = none).
-- ARGV: recipient ('' = none), destination id, now ms, then the budget's as admit.lua's.
return {check(false, '', KEYS[1], 0, KEYS[2], ARGV[1], KEYS[3], 0),
        check(false, '', '', 0, KEYS[2], ARGV[1], KEYS[3], 0),
        gate(false, KEYS[4], ARGV[2], ARGV[3], {KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]})
          or {'pass'}}
