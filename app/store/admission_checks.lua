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
