-- Cancel a delivery held in our own delayed queue, atomically against its promotion
-- (after history.lua and transition.lua). KEYS: record, delayed sends.  ARGV: id, now ms,
-- status index prefix, retention s (final: it counts from now; the caller frees the
-- delivery's dedupe mark and window).
-- Recorded canceled before it leaves the delayed set: failing half-way, it is still held
-- (and begin_send.lua never sends a canceled delivery).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 'missing'} end
if status ~= 'scheduled' then return {0, status} end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {0, 'queued'} end
transition(KEYS[1], ARGV[1], 'canceled', ARGV[2], ARGV[3], 'canceled before sending', {})
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, 'canceled'}
