-- A message someone else sent on the account, imported once (keyed by its SID).
-- KEYS: SID index, record, the set of logged destinations, destination index, recipient
--       index hash ('' = none).
-- ARGV: 1 id, 2 retention s, 3 status index prefix, 4 status, 5 destination, 6 recipient,
--       7 when the recipient index hash expires (ms), then the record's field/value pairs.
-- Failing half-way, it undoes itself: a SID marked known without its record would never
-- be imported.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
local first_logged = false
local ok, err = pcall(function()
  redis.call('HSET', KEYS[2], 'status', ARGV[4], unpack(ARGV, 8))
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  first_logged = redis.call('SADD', KEYS[3], ARGV[5]) == 1
  redis.call('ZADD', KEYS[4], 0, ARGV[1])
  if KEYS[5] ~= '' then
    redis.call('HSET', KEYS[5], ARGV[6] .. '|' .. ARGV[1], '')
    redis.call('PEXPIREAT', KEYS[5], ARGV[7])
  end
  redis.call('ZADD', ARGV[3] .. ARGV[4], 0, ARGV[1])
end)
if not ok then
  redis.pcall('DEL', KEYS[1], KEYS[2])
  if first_logged then redis.pcall('SREM', KEYS[3], ARGV[5]) end
  for _, index in ipairs({KEYS[4], ARGV[3] .. ARGV[4]}) do
    redis.pcall('ZREM', index, ARGV[1])
  end
  if KEYS[5] ~= '' then redis.pcall('HDEL', KEYS[5], ARGV[6] .. '|' .. ARGV[1]) end
  return redis.error_reply('import undone: ' .. (type(err) == 'table' and err.err or tostring(err)))
end
return 1
