-- wrk script: one PostHog webhook event per request, every request a different event.
-- Usage: wrk -s bench/wrk_events.lua -H 'Authorization: Bearer …' URL [-- EVENTS_PER_REQUEST]
-- uuid = a random run prefix + thread id + counter; recipients cycle over 1000 numbers.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  tid = tid or 0
  math.randomseed(os.time() * 1000 + tid)
  run = string.format("%08x", math.random(0, 0x7fffffff))
  per_request = tonumber(args[1]) or 1
  counter = 0
  wrk.headers["Content-Type"] = "application/json"
end

function event_json()
  counter = counter + 1
  local uuid = string.format("%s-%04x-4000-8000-%012x", run, tid, counter)
  local phone = string.format("+1415555%04d", counter % 1000)
  return string.format(
    '{"event":{"uuid":"%s","event":"bench","distinct_id":"user-%d","properties":' ..
    '{"plan":"pro","n":%d},"timestamp":"2026-11-23T10:00:00Z"},' ..
    '"person":{"id":"person-%d","properties":{"phone":"%s","name":"Ada"}}}',
    uuid, counter % 1000, counter, counter % 1000, phone)
end

function body()
  if per_request == 1 then
    return event_json()
  end
  local events = {}
  for i = 1, per_request do
    events[i] = event_json()
  end
  return "[" .. table.concat(events, ",") .. "]"
end

function request()
  return wrk.format("POST", nil, nil, body())
end
