-- Library, shared by every script that changes a delivery's status (after history.lua and
-- the generated `unindexed` table): appends to the history and moves the id between status
-- indexes (a status in `unindexed` has none). `extra` is a flat list
-- of field/value pairs to set with it.
-- The record is the truth and the indexes are hints (listings re-check the record), so
-- the record is written between the two index steps: a step failing half-way leaves the
-- record in its old or its new state, listed under that status either way.
local function transition(key, id, status, now_ms, prefix, detail, extra)
  local old = redis.call('HGET', key, 'status')
  local history = redis.call('HGET', key, 'history') or ''
  history = history .. '\n' .. history_entry(id, now_ms, status, '', detail)
  if old ~= status and not unindexed[status] then redis.call('ZADD', prefix .. status, 0, id) end
  redis.call('HSET', key, 'status', status, 'history', history, unpack(extra))
  if old and old ~= status then redis.call('ZREM', prefix .. old, id) end
  return old
end
