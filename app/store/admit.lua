-- Admits a chunk of deliveries, each atomically (after admission_checks.lua, history.lua
-- and the generated `unindexed` table). Returns
-- {status, reason, …facts} for each (facts as `check` gives them; a duplicate:
-- {'duplicate', original id}).
-- Input: one JSON array of deliveries, each [keys, args, record, guard] (guard: the
-- velocity and caps input of `guard_check`, {} for none).
-- keys: dedupe, throttle ('' = none), record, stream, index, destination index,
--       recipient index ('' = none), suppression list, delayed sends
-- args: id, dedupe ttl ms, throttle window ms, retention s, now ms, status, reason,
--       status index prefix, recipient ('' = none), due ms ('' = now), retention s of a
--       skipped delivery
-- record: the record's fields as a flat [name, value, …] list, every value a string
--
-- Redis does not roll a script back when a command in it fails. A delivery whose writes
-- fail half-way (say, a key of the wrong type) is undone, so that it leaves nothing —
-- above all no dedupe mark, which would make the sender's retry a "duplicate" of a
-- message never queued — and the script stops with an error: the deliveries before it
-- in the chunk stand (a retry finds them duplicates), none after it is admitted.
local function admit(KEYS, ARGV, fields, guard)
  local status, reason = ARGV[6], ARGV[7]
  -- A delivery the pipeline already skipped is only deduped.
  local sendable = status == 'queued'
  local checked = check(true, ARGV[1], KEYS[1], ARGV[2], KEYS[8],
                        sendable and ARGV[9] or '', sendable and KEYS[2] or '', ARGV[3])
  if checked[1] == 'duplicate' then return checked end
  local first = false
  if checked[1] == 'pass' and sendable then
    local refused
    refused, first = guard_check(guard, tonumber(ARGV[5]))
    if refused then
      -- Not sent: the window `check` just claimed for it (it was free) is free again.
      if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
        redis.call('DEL', KEYS[2])
      end
      checked = refused
    end
  end
  if checked[1] ~= 'pass' then status, reason = 'skipped', checked[1] end
  if status == 'queued' and ARGV[10] ~= '' then status = 'scheduled' end
  local history = history_entry(ARGV[1], ARGV[5], status, reason, '')
  if reason ~= '' then
    redis.call('HSET', KEYS[3], 'status', status, 'reason', reason, 'history', history,
               unpack(fields))
  else
    redis.call('HSET', KEYS[3], 'status', status, 'history', history, unpack(fields))
  end
  -- Nothing pending expires: a delivery's record, dedupe mark and window live until it is
  -- final (finish_send.lua starts their time then); a skipped one is final at once.
  if status == 'skipped' then
    redis.call('EXPIRE', KEYS[3], ARGV[11])
  else
    for _, key in ipairs({KEYS[1], KEYS[2]}) do
      if key ~= '' then redis.call('PERSIST', key) end
    end
  end
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
  if KEYS[7] ~= '' then redis.call('ZADD', KEYS[7], 0, ARGV[1]) end
  if not unindexed[status] then redis.call('ZADD', ARGV[8] .. status, 0, ARGV[1]) end
  if status ~= 'skipped' then guard_count(guard, first, ARGV[1], tonumber(ARGV[5])) end
  -- Last: once the delivery is queued (or held), nothing of it can fail any more.
  if status == 'queued' then redis.call('XADD', KEYS[4], '*', 'delivery', ARGV[1]) end
  if status == 'scheduled' then redis.call('ZADD', KEYS[9], ARGV[10], ARGV[1]) end
  return {status, reason, unpack(checked, 2)}
end

-- Removes whatever a failed `admit` wrote (each step may fail too: pcall).
local function undo(KEYS, ARGV, guard)
  local id = ARGV[1]
  -- (A velocity count it made stays: one first-time recipient too many is the safe side.)
  if guard.c ~= nil then redis.pcall('ZREM', cap_key(guard), id) end
  for _, key in ipairs({KEYS[1], KEYS[2]}) do
    if key ~= '' and redis.pcall('GET', key) == id then redis.pcall('DEL', key) end
  end
  redis.pcall('DEL', KEYS[3])
  for _, index in ipairs({KEYS[5], KEYS[6], KEYS[7], KEYS[9],
                          ARGV[8] .. 'queued', ARGV[8] .. 'scheduled', ARGV[8] .. 'skipped'}) do
    if index ~= '' then redis.pcall('ZREM', index, id) end
  end
end

local results = {}
for i, delivery in ipairs(cjson.decode(ARGV[1])) do
  local ok, result = pcall(admit, delivery[1], delivery[2], delivery[3], delivery[4])
  if not ok then
    undo(delivery[1], delivery[2], delivery[4])
    local message = type(result) == 'table' and result.err or tostring(result)
    return redis.error_reply('admission of ' .. delivery[2][1] .. ' undone: ' .. message)
  end
  results[i] = result
end
return results
