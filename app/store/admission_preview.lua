-- Admission's checks for one delivery, read-only (after admission_checks.lua and
-- destination_gate.lua): {with dedupe, without dedupe} (the tester reports a duplicate but
-- still shows what admission would decide next: the checks, the destination's pause, the
-- guard, the destination's budget, in admission's order).
-- KEYS: dedupe, suppression list, throttle ('' = none), pauses, budget ('' = none).
-- ARGV: recipient ('' = none), the guard's input as JSON (as admission gets it), now ms,
--       destination id, then the budget's as admit.lua's.
local without_dedupe = check(false, '', '', 0, KEYS[2], ARGV[1], KEYS[3], 0)
if without_dedupe[1] == 'pass' then
  local pause = active_pause(KEYS[4], ARGV[4], ARGV[3])
  if pause then
    without_dedupe = {'destination_paused', pause}
  else
    local budget = {KEYS[5], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]}
    without_dedupe = guard_check(cjson.decode(ARGV[2]), tonumber(ARGV[3]))
      or spend_budget(false, KEYS[4], ARGV[4], ARGV[3], budget) or without_dedupe
  end
end
return {check(false, '', KEYS[1], 0, KEYS[2], ARGV[1], KEYS[3], 0), without_dedupe}
