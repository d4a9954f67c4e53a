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
-- sent, each with its own input (nil: off). Pure reads; `guard_count` counts an admitted
-- delivery, in the same script, so that concurrent admissions never pass a limit together.
-- v (velocity): {number = the number's backoff key, block = its block's backoff key,
--   known = the block's hash of numbers texted before, member = the number's last digits,
--   keep_ms = how long the hash is kept, until = the hour's end ms,
--   counters = [[key, limit], …]}: first-time recipients of this hour, per block/country.
-- c (caps): {key = the recipient's cap set (id → admitted ms), rules = [[texts, ms], …],
--   longest = the longest rule's ms}.
-- A refusal:
--   {'blocked_velocity', 'number' | 'block', Twilio's pumping code, ms until it frees}
--   {'blocked_velocity', 'limit', counter index (0-based), count} (it frees at `until`)
--   {'capped', rule index (0-based), epoch ms it frees at, count}
-- velocity_check also says whether the recipient is a first-time one (counted if sent).
local function velocity_check(v)
  if v == nil then return nil, false end
  local backoff = redis.call('MGET', v.number, v.block)
  if backoff[1] then
    return {'blocked_velocity', 'number', backoff[1], redis.call('PTTL', v.number)}, false
  end
  if redis.call('HEXISTS', v.known, v.member) == 1 then return nil, false end
  if backoff[2] then
    return {'blocked_velocity', 'block', backoff[2], redis.call('PTTL', v.block)}, true
  end
  if #v.counters == 0 then return nil, true end
  local names = {}
  for i, counter in ipairs(v.counters) do names[i] = counter[1] end
  local counts = redis.call('MGET', unpack(names))
  for i, counter in ipairs(v.counters) do
    local count = tonumber(counts[i] or '0')
    if count >= counter[2] then
      return {'blocked_velocity', 'limit', i - 1, count}, true
    end
  end
  return nil, true
end

local function caps_check(c, now)
  if c == nil then return nil end
  for i, rule in ipairs(c.rules) do
    local since = '(' .. string.format('%d', now - rule[2])
    local count = redis.call('ZCOUNT', c.key, since, '+inf')
    if count >= rule[1] then
      -- Frees when the oldest texts in the window leave it: count - texts + 1 of them.
      local nth = redis.call('ZRANGEBYSCORE', c.key, since, '+inf', 'WITHSCORES',
                             'LIMIT', count - rule[1], 1)
      return {'capped', i - 1, tonumber(nth[2]) + rule[2], count}
    end
  end
  return nil
end

-- The guard's verdict for a delivery that passed `check`: a refusal, or nil and whether
-- its recipient is first-time.
local function guard_check(g, now)
  local refused, first = velocity_check(g.v)
  if refused then return refused, first end
  return caps_check(g.c, now), first
end

-- Counts an admitted delivery against the guard's limits.
local function guard_count(g, first, id, now)
  local v, c = g.v, g.c
  if v ~= nil and first then
    redis.call('HSET', v.known, v.member, 1)
    redis.call('PEXPIRE', v.known, v.keep_ms)
    for _, counter in ipairs(v.counters) do
      -- A counter is the hour's: it goes at the hour's end (set once, when it is new).
      if redis.call('INCR', counter[1]) == 1 then
        redis.call('PEXPIREAT', counter[1], v['until'])
      end
    end
  end
  if c ~= nil then
    redis.call('ZADD', c.key, now, id)
    redis.call('ZREMRANGEBYSCORE', c.key, '-inf', string.format('%d', now - c.longest))
    redis.call('PEXPIRE', c.key, c.longest)
  end
end
