-- The worker's first step for a queued delivery, in one round trip (after json_input.lua,
-- history.lua and transition.lua): skip what is gone or done (or canceled), skip (as
-- opted_out) a recipient who opted out since admission, else mark it sending.
-- KEYS: record, suppression list.  ARGV: id, now ms, status index prefix.
-- Returns {verdict, record fields as a flat list}.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', {}} end
local sid = redis.call('HGET', KEYS[1], 'twilio_sid')
if status == 'sent' or status == 'mocked' or status == 'failed' or status == 'skipped'
   or status == 'canceled' or (sid and sid ~= '') then
  return {'done', {}}
end
local recipient = redis.call('HGET', KEYS[1], 'recipient') or ''
if redis.call('HEXISTS', KEYS[2], recipient) == 1 then
  transition(KEYS[1], ARGV[1], 'skipped', ARGV[2], ARGV[3], 'recipient opted out',
             {'reason', 'opted_out'})
  return {'opted_out', {}}
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
transition(KEYS[1], ARGV[1], 'sending', ARGV[2], ARGV[3], '', {})
return {'send', redis.call('HGETALL', KEYS[1])}
