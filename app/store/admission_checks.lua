-- Library: admission's checks, in order: dedupe, suppression, throttle. Shared by
-- admission (admit.lua), which claims the dedupe mark and the throttle window as it
-- checks (SET NX), and by the preview (admission_preview.lua, the destination tester),
-- which only reads: one piece of code, so the two cannot drift. A '' key or recipient
-- skips its check. Returns {verdict, …facts}:
--   {'duplicate', original delivery id}    {'opted_out', the suppression's JSON}
--   {'throttled', holder's delivery id, ms until the window frees}    {'pass'}
local function check(claim, id, dedupe, dedupe_ms, suppressions, recipient, throttle, window_ms)
  if dedupe ~= '' then
    if claim then
      if not redis.call('SET', dedupe, id, 'NX', 'PX', dedupe_ms) then
        return {'duplicate', redis.call('GET', dedupe) or ''}
      end
    else
      local original = redis.call('GET', dedupe)
      if original then return {'duplicate', original} end
    end
  end
  if recipient ~= '' then
    local suppressed = redis.call('HGET', suppressions, recipient)
    if suppressed then return {'opted_out', suppressed} end
  end
  if throttle ~= '' then
    local free
    if claim then
      free = redis.call('SET', throttle, id, 'NX', 'PX', window_ms)
    else
      free = redis.call('EXISTS', throttle) == 0
    end
    if not free then
      return {'throttled', redis.call('GET', throttle) or '', redis.call('PTTL', throttle)}
    end
  end
  return {'pass'}
end

-- Library: the guard's checks (app/guard.py), run after `check` passes for a delivery to be
-- sent. Pure reads; `guard_count` counts an admitted delivery in the same script, so that
-- concurrent admissions never pass a limit together. Keys are built here from their parts
-- (as app/store/keys.py names them, after the generated KEY_PREFIX): the input stays small.
-- g = {r = recipient, v = velocity (nil: off), c = caps (nil: none)}
-- v = [country, hour start ms, ms a number stays known, destination,
--      [[range ('block' | 'country'), 1 = this destination's | 0 = overall, limit], …]]
-- c = [mode .. ':' .. category, [[texts, window ms], …], longest window ms]
-- A refusal:
--   {'blocked_velocity', 'number' | 'block', Twilio's pumping code, ms until it frees}
--   {'blocked_velocity', 'limit', limit index (0-based), count} (frees at the hour's end)
--   {'capped', rule index (0-based), epoch ms it frees at, count}
local function velocity_keys(g)
  local v, number = g.v, g.r
  local block = string.sub(number, 1, -4)
  local hour = KEY_PREFIX .. 'velocity:' .. string.format('%d', v[2]) .. ':'
  local counters = {}
  for i, limit in ipairs(v[5]) do
    local whose = limit[2] == 1 and ('d:' .. v[4]) or 'all'
    counters[i] = hour .. whose .. ':' .. limit[1] .. ':' .. (limit[1] == 'block' and block or v[1])
  end
  return {
    number = KEY_PREFIX .. 'pumping:number:' .. number,
    block = KEY_PREFIX .. 'pumping:block:' .. block,
    known = KEY_PREFIX .. 'velocity:known:' .. block,
    member = string.sub(number, -3),
    counters = counters,
  }
end

local function cap_key(g)
  return KEY_PREFIX .. 'cap:' .. g.c[1] .. ':' .. g.r
end

-- nil (pass) or a refusal, and whether the recipient is a first-time one.
local function velocity_check(g)
  if g.v == nil then return nil, false end
  local k = velocity_keys(g)
  local backoff = redis.call('MGET', k.number, k.block)
  if backoff[1] then
    return {'blocked_velocity', 'number', backoff[1], redis.call('PTTL', k.number)}, false
  end
  if redis.call('HEXISTS', k.known, k.member) == 1 then return nil, false end
  if backoff[2] then
    return {'blocked_velocity', 'block', backoff[2], redis.call('PTTL', k.block)}, true
  end
  if #k.counters == 0 then return nil, true end
  local counts = redis.call('MGET', unpack(k.counters))
  for i, limit in ipairs(g.v[5]) do
    local count = tonumber(counts[i] or '0')
    if count >= limit[3] then return {'blocked_velocity', 'limit', i - 1, count}, true end
  end
  return nil, true
end

local function caps_check(g, now)
  if g.c == nil then return nil end
  local key = cap_key(g)
  for i, rule in ipairs(g.c[2]) do
    local since = '(' .. string.format('%d', now - rule[2])
    local count = redis.call('ZCOUNT', key, since, '+inf')
    if count >= rule[1] then
      -- Frees when the oldest texts in the window leave it: count - texts + 1 of them.
      local nth = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES',
                             'LIMIT', count - rule[1], 1)
      return {'capped', i - 1, tonumber(nth[2]) + rule[2], count}
    end
  end
  return nil
end

-- The guard's verdict for a delivery that passed `check`: a refusal or nil, and whether
-- its recipient is a first-time one.
local function guard_check(g, now)
  local refused, first = velocity_check(g)
  if refused then return refused, first end
  return caps_check(g, now), first
end

-- Counts an admitted delivery against the guard's limits.
local function guard_count(g, first, id, now)
  if g.v ~= nil and first then
    local k = velocity_keys(g)
    redis.call('HSET', k.known, k.member, 1)
    redis.call('PEXPIRE', k.known, g.v[3])
    local hour_end = string.format('%d', g.v[2] + 3600000)
    for _, counter in ipairs(k.counters) do
      -- A counter is the hour's: it goes at the hour's end (set once, when it is new).
      if redis.call('INCR', counter) == 1 then redis.call('PEXPIREAT', counter, hour_end) end
    end
  end
  if g.c ~= nil then
    local key = cap_key(g)
    redis.call('ZADD', key, now, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - g.c[3]))
    redis.call('PEXPIRE', key, g.c[3])
  end
end
