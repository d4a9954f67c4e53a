-- A status callback names a delivery (its URL carries the id) whose attempt's outcome is
-- not known yet (`sending` or `unknown`, no provider id — stored as 'twilio_sid'): that id
-- is the attempt's message. Record
-- it as sent (after history.lua and transition.lua), so the resolver never sends it again:
-- retention and the dedupe time count from now, the window from now (the text went out).
-- KEYS: record, SID key, dedupe ('' = none), throttle ('' = none), dedupe bucket.
-- ARGV: id, SID, now ms, status index prefix, retention s, when the dedupe bucket expires
--       (ms), window ms, the mark's field in the bucket (after dedupe_marks.lua).
-- Returns 1 when the delivery has this SID (adopted now or before), else 0.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local known = redis.call('HGET', KEYS[1], 'twilio_sid') or ''
if known ~= '' then return known == ARGV[2] and 1 or 0 end
if status ~= 'sending' and status ~= 'unknown' then return 0 end
transition(KEYS[1], ARGV[1], 'sent', ARGV[3], ARGV[4],
           'attempt ' .. (redis.call('HGET', KEYS[1], 'attempts') or '?') ..
           ': its status callback names ' .. ARGV[2] .. ': adopted, not sent again',
           {'twilio_sid', ARGV[2]})
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
settle_mark(KEYS[3], KEYS[5], ARGV[8], ARGV[1], ARGV[6])
if KEYS[4] ~= '' and tonumber(ARGV[7]) > 0 then
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[7])
end
return 1
