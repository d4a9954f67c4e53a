-- Admission's checks for one delivery, read-only (after admission_checks.lua and
-- destination_gate.lua): {with dedupe, without dedupe} (the tester reports a duplicate but
-- still shows what admission would decide next: the checks, the destination's pause, the
-- guard, the destination's budget, in admission's order).
-- KEYS: dedupe, suppression list, throttle ('' = none), pauses, budget ('' = none), then
--       the dedupe buckets.
-- ARGV: recipient ('' = none), the mark's field in the buckets, the guard's input as JSON
--       (as admission gets it), now ms, destination id, then the budget's as admit.lua's.
local buckets = {unpack(KEYS, 6)}
local without_dedupe = check(false, '', '', buckets, ARGV[2], KEYS[2], ARGV[1], KEYS[3], 0)
if without_dedupe[1] == 'pass' then
  local pause = active_pause(KEYS[4], ARGV[5], ARGV[4])
  if pause then
    without_dedupe = {'destination_paused', pause}
  else
    local budget = {KEYS[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]}
    without_dedupe = guard_check(cjson.decode(ARGV[3]), tonumber(ARGV[4]))
      or spend_budget(false, KEYS[4], ARGV[5], ARGV[4], budget) or without_dedupe
  end
end
return {check(false, '', KEYS[1], buckets, ARGV[2], KEYS[2], ARGV[1], KEYS[3], 0),
        without_dedupe}
