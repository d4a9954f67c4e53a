-- Library: a destination's own gate (pauses.py), asked after admission's checks pass:
-- is the destination paused, and does this delivery fit in its budget for the day?
-- Shared by admission (admit.lua: counts the spend, and pauses the destination when the
-- budget is spent), the preview (admission_preview.lua: reads only) and the worker
-- (begin_send.lua, `active_pause`: a paused destination's deliveries are held, not sent).
--
-- A pause is a JSON value in the pauses hash, by destination: {since, until (epoch ms,
-- absent: until resumed), by, reason, code, budget_key}. A bounded pause past its `until`
-- is no pause (it ends by itself; the value stays until the next pause or resume).
local function active_pause(pauses, destination, now_ms)
  local raw = redis.call('HGET', pauses, destination)
  if not raw then return nil end
  local ends = cjson.decode(raw)['until']
  if type(ends) == 'number' and ends <= tonumber(now_ms) then return nil end
  return raw
end

-- budget: {key ('' = no budget), segments, segments limit ('' = none), cost (millionths),
-- cost limit ('' = none), day end ms}. Returns nil (it fits: counted when `claim`), or
-- {'over_budget', facts JSON} — the first delivery over a budget pauses the destination
-- until the day ends (or it is resumed: resume.lua waives the rest of that day's budget).
local function spend_budget(claim, pauses, destination, now_ms, budget)
  local key = budget[1]
  if key == '' then return nil end
  local spent = redis.call('HMGET', key, 'segments', 'cost', 'waived')
  local segments, cost = tonumber(spent[1] or '0'), tonumber(spent[2] or '0')
  local add_segments, add_cost = tonumber(budget[2]), tonumber(budget[4])
  local over = spent[3] == false and (
    (budget[3] ~= '' and segments + add_segments > tonumber(budget[3])) or
    (budget[5] ~= '' and cost + add_cost > tonumber(budget[5])))
  if over then
    local facts = {since = tonumber(now_ms), ['until'] = tonumber(budget[6]), by = 'budget',
                   reason = 'over its daily budget', budget_key = key,
                   segments = segments, segments_limit = tonumber(budget[3]),
                   cost = cost, cost_limit = tonumber(budget[5]),
                   needs = add_segments, costs = add_cost}
    local encoded = cjson.encode(facts)
    if claim then redis.call('HSET', pauses, destination, encoded) end
    return {'over_budget', encoded}
  end
  if claim then
    redis.call('HINCRBY', key, 'segments', add_segments)
    if add_cost > 0 then redis.call('HINCRBY', key, 'cost', add_cost) end
    -- Kept a day past its end: a delivery admitted late in the day may fail tomorrow.
    redis.call('PEXPIREAT', key, tonumber(budget[6]) + 86400000)
  end
  return nil
end
