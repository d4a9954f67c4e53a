-- A provider's status report (callback or poll) moves a delivery forward only (after
-- history.lua and transition.lua): a late or repeated report never overwrites a later
-- state.
-- KEYS: record.  ARGV: id, now ms, status index prefix, provider status, its rank, our status
-- for it ('' = unchanged), error code, detail.
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 'missing' end
local rank = tonumber(redis.call('HGET', KEYS[1], 'twilio_status_rank') or '0') or 0
if tonumber(ARGV[5]) <= rank then return 'stale' end
local status = ARGV[6] ~= '' and ARGV[6] or current
local extra = {'twilio_status', ARGV[4], 'twilio_status_rank', ARGV[5]}
if ARGV[7] ~= '' then
  table.insert(extra, 'error_code'); table.insert(extra, ARGV[7])
end
transition(KEYS[1], ARGV[1], status, ARGV[2], ARGV[3], ARGV[8], extra)
return 'applied'
