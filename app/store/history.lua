-- Library: one status history entry as stored (records.py's history_entry writes the
-- same): `<ms after the id's time>|<status>|<reason>|<detail>`, the empty tail left out;
-- entries are joined by newlines. Short, so that a record stays in Redis' compact
-- listpack encoding (JSON with ISO times did not).
local function history_entry(id, now_ms, status, reason, detail)
  local created = tonumber(string.sub(id, 4, 15), 16) or tonumber(now_ms)
  local entry = string.format('%d|%s', tonumber(now_ms) - created, status)
  if detail ~= '' then return entry .. '|' .. reason .. '|' .. detail end
  if reason ~= '' then return entry .. '|' .. reason end
  return entry
end
