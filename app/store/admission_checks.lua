-- Library: admission's checks, in order: dedupe, suppression, throttle. Shared by
-- admission (admit.lua), which claims the throttle window as it checks (SET NX; the dedupe
-- mark is its to write once it has decided), and by the preview (admission_preview.lua,
-- the destination tester), which only reads: one piece of code, so the two cannot drift.
-- A '' key or recipient skips its check. A dedupe mark is a key of its own (a delivery
-- that was admitted) or a field `mark_field` of one of `buckets` (a skipped one). Returns
-- {verdict, …facts}:
--   {'duplicate', original's mark (its id, or its skipped log entry)}
--   {'opted_out', the suppression's JSON}
--   {'throttled', holder's delivery id, ms until the window frees}    {'pass'}
local function check(claim, id, dedupe, buckets, mark_field, suppressions, recipient,
                     throttle, window_ms)
  if dedupe ~= '' then
    local original = redis.call('GET', dedupe)
    for _, bucket in ipairs(buckets) do
      if original then break end
      original = redis.call('HGET', bucket, mark_field)
    end
    if original then return {'duplicate', original} end
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
