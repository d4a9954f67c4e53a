-- The worker's first step for a queued delivery, in one round trip (after json_input.lua,
-- history.lua and transition.lua): skip what is gone or done (or canceled); an attempt
-- left `sending` (its worker died, or the entry was taken over) becomes `unknown`; an
-- `unknown` one is sent only by whoever asked the provider about that very attempt; skip (as
-- opted_out) a recipient who opted out since admission; else record the attempt (the
-- intent ledger: attempt number and start, before the request leaves) and mark it sending.
-- A delivery of a paused destination (destination_gate.lua) is not sent: 'paused' (the
-- caller holds it, pauses.py).
-- KEYS: record, suppression list, pauses.
-- ARGV: id, now ms, status index prefix, resolve ms (how long after an attempt's start
--       the provider's list can be trusted to show it), resolved attempt (the attempt
--       number the provider was asked about and did not have; '' = none), retention s of
--       a skipped one. 'twilio_sid': the stored name of the provider's message id.
-- Returns {verdict, record fields as a flat list}: 'send' | 'resolve' | 'opted_out' (the
-- caller frees its mark and window) | 'paused' | 'missing' | 'done'.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', {}} end
local sid = redis.call('HGET', KEYS[1], 'twilio_sid')
if status == 'sent' or status == 'mocked' or status == 'failed' or status == 'skipped'
   or status == 'expired'
   or status == 'canceled' or (sid and sid ~= '') then
  return {'done', {}}
end
if status == 'sending' then
  local attempt = redis.call('HGET', KEYS[1], 'attempts') or '0'
  local started = tonumber(redis.call('HGET', KEYS[1], 'attempt_at') or '') or tonumber(ARGV[2])
  transition(KEYS[1], ARGV[1], 'unknown', ARGV[2], ARGV[3],
             'attempt ' .. attempt .. ': outcome unknown (its worker stopped before recording '
             .. 'an answer): the provider will be asked',
             {'resolve_after', string.format('%d', started + tonumber(ARGV[4]))})
  return {'resolve', redis.call('HGETALL', KEYS[1])}
end
if status == 'unknown' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[5] then
  return {'resolve', redis.call('HGETALL', KEYS[1])}
end
local recipient = redis.call('HGET', KEYS[1], 'recipient') or ''
if redis.call('HEXISTS', KEYS[2], recipient) == 1 then
  transition(KEYS[1], ARGV[1], 'skipped', ARGV[2], ARGV[3], 'recipient opted out',
             {'reason', 'opted_out'})
  redis.call('EXPIRE', KEYS[1], ARGV[6])  -- final: its retention counts from now
  return {'opted_out', redis.call('HGETALL', KEYS[1])}
end
local destination = redis.call('HGET', KEYS[1], 'dest') or redis.call('HGET', KEYS[1], 'destination')
if active_pause(KEYS[3], destination or '', ARGV[2]) then
  return {'paused', redis.call('HGETALL', KEYS[1])}
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
transition(KEYS[1], ARGV[1], 'sending', ARGV[2], ARGV[3], '', {'attempt_at', ARGV[2]})
return {'send', redis.call('HGETALL', KEYS[1])}
