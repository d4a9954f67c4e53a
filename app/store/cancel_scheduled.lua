-- Cancel a delivery held in our own delayed queue, atomically against its promotion
-- (after transition.lua). KEYS: record, delayed sends.  ARGV: id, now, status index prefix.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 'missing'} end
if status ~= 'scheduled' then return {0, status} end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return {0, 'queued'} end
transition(KEYS[1], ARGV[1], 'canceled', ARGV[2], ARGV[3], 'canceled before sending', {})
return {1, 'canceled'}
