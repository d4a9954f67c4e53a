-- Cancel a delivery held in our own delayed queue, atomically against its promotion
-- (after transition.lua). KEYS: record, delayed sends.
-- ARGV: id, now, status index prefix, retention s, dedupe ms.
-- Recorded canceled before it leaves the delayed set: failing half-way, it is still held
-- (and begin_send.lua never sends a canceled delivery).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 'missing'} end
if status ~= 'scheduled' then return {0, status} end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {0, 'queued'} end
transition(KEYS[1], ARGV[1], 'canceled', ARGV[2], ARGV[3], 'canceled before sending', {})
redis.call('ZREM', KEYS[2], ARGV[1])
-- Final, never sent: retention counts from now, and the window is free again.
redis.call('EXPIRE', KEYS[1], ARGV[4])
local dedupe = redis.call('HGET', KEYS[1], 'dedupe_key') or ''
if dedupe ~= '' and redis.call('GET', dedupe) == ARGV[1] then redis.call('PEXPIRE', dedupe, ARGV[5]) end
local throttle = redis.call('HGET', KEYS[1], 'throttle_key') or ''
if throttle ~= '' and redis.call('GET', throttle) == ARGV[1] then redis.call('DEL', throttle) end
return {1, 'canceled'}
