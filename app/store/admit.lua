-- Admits a chunk of deliveries, each atomically (after admission_checks.lua, history.lua
-- and the generated `unindexed` table). Returns
-- {status, reason} for each, {'skipped', reason, …facts, entry} for a skipped one (facts as
-- `check` or `guard_check` give them; entry: its skipped log entry, which names it), or
-- {'duplicate', original's mark}.
-- Input: one JSON array of deliveries, each [keys, args, record, guard] (guard: the
-- velocity and caps input of `guard_check`, {} for none).
-- keys: 1 dedupe, 2 throttle ('' = none), 3 record, 4 send stream, 5 the set of logged
--       destinations, 6 destination index, 7 recipient index hash ('' = none),
--       8 suppression list, 9 delayed sends, 10 skipped log, 11-13 dedupe buckets (the
--       one a mark written now goes to first), 14 pauses, 15 budget ('' = none)
-- args: 1 id, 2 throttle window ms, 3 now ms, 4 status, 5 reason, 6 status index prefix,
--       7 recipient ('' = none), 8 due ms ('' = now), 9 event identity (the mark's field
--       in a bucket), 10 when the first bucket expires (ms), 11 the skipped log's oldest
--       kept entry (ms), 12 how many of the record's items a skipped entry keeps,
--       13 destination, 14 when the recipient index hash expires (ms),
--       then the budget's (destination_gate.lua): 15 segments, 16 segments limit,
--       17 cost, 18 cost limit, 19 day end ms
-- record: the record's fields as a flat [name, value, …] list, every value a string
--
-- Redis does not roll a script back when a command in it fails. A delivery whose writes
-- fail half-way (say, a key of the wrong type) is undone, so that it leaves nothing —
-- above all no dedupe mark, which would make the sender's retry a "duplicate" of a
-- message never queued — and the script stops with an error: the deliveries before it
-- in the chunk stand (a retry finds them duplicates), none after it is admitted.

-- What the delivery being admitted added, for `undo`: its skipped log entry, or whether it
-- is its destination's first.
local entry, first_logged

-- Record writing, once the checks have decided. A skipped delivery is final at once: an
-- entry of the skipped log (many to a listpack node, trimmed by age as entries are
-- added) and a field in a dedupe bucket, not a record with a mark and index entries.
local function record_skipped(KEYS, ARGV, fields, reason)
  entry = redis.call('XADD', KEYS[10], 'MINID', '~', ARGV[11], '*', 'reason', reason,
                     unpack(fields, 1, tonumber(ARGV[12])))
  redis.call('HSET', KEYS[11], ARGV[9], entry)
  redis.call('PEXPIREAT', KEYS[11], ARGV[10])
  return entry
end

-- A delivery to send (now or later): its record, its dedupe mark and window kept while it
-- is pending (finish_send.lua starts their time), its index entries, then its queue entry.
local function record_admitted(KEYS, ARGV, fields, status, guard, first)
  local history = history_entry(ARGV[1], ARGV[3], status, '', '')
  redis.call('SET', KEYS[1], ARGV[1])
  if KEYS[2] ~= '' then redis.call('PERSIST', KEYS[2]) end
  redis.call('HSET', KEYS[3], 'status', status, 'history', history, unpack(fields))
  -- (a listing of all deliveries merges the indexes of the destinations in this set)
  first_logged = redis.call('SADD', KEYS[5], ARGV[13]) == 1
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
  if KEYS[7] ~= '' then
    redis.call('HSET', KEYS[7], ARGV[7] .. '|' .. ARGV[1], '')
    redis.call('PEXPIREAT', KEYS[7], ARGV[14])
  end
  if not unindexed[status] then redis.call('ZADD', ARGV[6] .. status, 0, ARGV[1]) end
  guard_count(guard, first, ARGV[1], tonumber(ARGV[3]))
  -- Last: once the delivery is queued (or held), nothing of it can fail any more.
  if status == 'queued' then redis.call('XADD', KEYS[4], '*', 'delivery', ARGV[1]) end
  if status == 'scheduled' then redis.call('ZADD', KEYS[9], ARGV[8], ARGV[1]) end
end
local charged = nil  -- the budget the delivery being admitted was counted in (for `undo`)

local function admit(KEYS, ARGV, fields, guard)
  local status, reason = ARGV[4], ARGV[5]
  -- A delivery the pipeline already skipped is only deduped.
  local sendable = status == 'queued'
  local checked = check(true, ARGV[1], KEYS[1], {KEYS[11], KEYS[12], KEYS[13]}, ARGV[9],
                        KEYS[8], sendable and ARGV[7] or '', sendable and KEYS[2] or '',
                        ARGV[2])
  if checked[1] == 'duplicate' then return checked end
  local first = false
  if checked[1] == 'pass' and sendable then
    -- The destination's pause first (a paused destination admits nothing), then the
    -- guard, then the destination's budget (destination_gate.lua): what passes is counted.
    local refused
    local pause = active_pause(KEYS[14], ARGV[13], ARGV[3])
    if pause then
      refused = {'destination_paused', pause}
    else
      refused, first = guard_check(guard, tonumber(ARGV[3]))
    end
    if not refused then
      local budget = {KEYS[15], ARGV[15], ARGV[16], ARGV[17], ARGV[18], ARGV[19]}
      refused = spend_budget(true, KEYS[14], ARGV[13], ARGV[3], budget)
      if not refused and KEYS[15] ~= '' then
        charged = budget
        -- What to give back if the send fails for good (pauses.py: release_budget.lua).
        fields[#fields + 1] = 'budget'
        fields[#fields + 1] = KEYS[15] .. '|' .. ARGV[15] .. '|' .. ARGV[17]
      end
    end
    if refused then
      -- Not sent: the window `check` just claimed for it (it was free) is free again.
      if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
        redis.call('DEL', KEYS[2])
      end
      checked = refused
    end
  end
  if checked[1] ~= 'pass' then status, reason = 'skipped', checked[1] end
  if status == 'skipped' then
    local facts = {status, reason, unpack(checked, 2)}
    table.insert(facts, record_skipped(KEYS, ARGV, fields, reason))
    return facts
  end
  if ARGV[8] ~= '' then status = 'scheduled' end
  record_admitted(KEYS, ARGV, fields, status, guard, first)
  return {status, reason}
end

-- Removes whatever a failed `admit` wrote (each step may fail too: pcall).
local function undo(KEYS, ARGV, guard)
  local id = ARGV[1]
  -- (A velocity count it made stays: one first-time recipient too many is the safe side.)
  if charged then
    redis.pcall('HINCRBY', charged[1], 'segments', -tonumber(charged[2]))
    if tonumber(charged[4]) > 0 then
      redis.pcall('HINCRBY', charged[1], 'cost', -tonumber(charged[4]))
    end
  end
  if guard.c ~= nil then redis.pcall('ZREM', cap_key(guard), id) end
  for _, key in ipairs({KEYS[1], KEYS[2]}) do
    if key ~= '' and redis.pcall('GET', key) == id then redis.pcall('DEL', key) end
  end
  redis.pcall('DEL', KEYS[3])
  if KEYS[7] ~= '' then redis.pcall('HDEL', KEYS[7], ARGV[7] .. '|' .. id) end
  for _, index in ipairs({KEYS[6], KEYS[9],
                          ARGV[6] .. 'queued', ARGV[6] .. 'scheduled'}) do
    if index ~= '' then redis.pcall('ZREM', index, id) end
  end
  if first_logged then redis.pcall('SREM', KEYS[5], ARGV[13]) end
  if entry then
    redis.pcall('XDEL', KEYS[10], entry)
    if redis.pcall('HGET', KEYS[11], ARGV[9]) == entry then
      redis.pcall('HDEL', KEYS[11], ARGV[9])
    end
  end
end

local results = {}
for i, delivery in ipairs(cjson.decode(ARGV[1])) do
  entry, first_logged, charged = nil, false, nil
  local ok, result = pcall(admit, delivery[1], delivery[2], delivery[3], delivery[4])
  if not ok then
    undo(delivery[1], delivery[2], delivery[4])
    local message = type(result) == 'table' and result.err or tostring(result)
    return redis.error_reply('admission of ' .. delivery[2][1] .. ' undone: ' .. message)
  end
  results[i] = result
end
return results
