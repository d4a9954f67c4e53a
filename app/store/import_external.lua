-- A message someone else sent on the account, imported once (keyed by its SID).
-- KEYS: SID index, record, the set of logged destinations, destination index, recipient
--       index ('' = none).
-- ARGV: id, retention s, status index prefix, status, destination, then the record's
--       field/value pairs.
-- Failing half-way, it undoes itself: a SID marked known without its record would never
-- be imported.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
local first_logged = false
local ok, err = pcall(function()
  redis.call('HSET', KEYS[2], 'status', ARGV[4], unpack(ARGV, 6))
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  first_logged = redis.call('SADD', KEYS[3], ARGV[5]) == 1
  redis.call('ZADD', KEYS[4], 0, ARGV[1])
  if KEYS[5] ~= '' then redis.call('ZADD', KEYS[5], 0, ARGV[1]) end
  redis.call('ZADD', ARGV[3] .. ARGV[4], 0, ARGV[1])
end)
if not ok then
  redis.pcall('DEL', KEYS[1], KEYS[2])
  if first_logged then redis.pcall('SREM', KEYS[3], ARGV[5]) end
  for _, index in ipairs({KEYS[4], KEYS[5], ARGV[3] .. ARGV[4]}) do
    if index ~= '' then redis.pcall('ZREM', index, ARGV[1]) end
  end
  return redis.error_reply('import undone: ' .. (type(err) == 'table' and err.err or tostring(err)))
end
return 1
