-- Pauses a destination (after destination_gate.lua): writes the pause unless one is
-- active already and `replace` is '' (a Twilio error code pauses once however many sends
-- see it: the first pause, and its event, stand).
-- KEYS: pauses.  ARGV: destination id, pause JSON, now ms, replace ('1' | '').
-- Returns {1 when written | 0, the pause now in force}.
local current = active_pause(KEYS[1], ARGV[1], ARGV[3])
if current and ARGV[4] == '' then return {0, current} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, ARGV[2]}
