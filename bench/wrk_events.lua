-- wrk script: one PostHog webhook event per request, every request a different event.
-- Usage: wrk -s bench/wrk_events.lua -H 'Authorization: Bearer …' URL [-- EVENTS_PER_REQUEST]
-- uuid = a random run prefix + thread id + counter; each event to another number (8 area
-- codes x 8 million from a random start, as payloads.py: the throttle never holds one back).

local threads = 0
local areas = {415, 212, 312, 646, 617, 206, 303, 512}

function phone()
  local k = (phone_start + counter) % 64000000
  return string.format("+1%d%07d", areas[math.floor(k / 8000000) + 1], 2000000 + k % 8000000)
end

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

-- Two wrk processes started in the same second (figure 8) must not send the same events:
-- seeded from /dev/urandom, not from the clock.
local function seed()
  local urandom = io.open("/dev/urandom", "rb")
  if not urandom then return os.time() * 1000 + tid end
  local a, b, c = urandom:read(3):byte(1, 3)
  urandom:close()
  return (a * 256 + b) * 256 + c + tid
end

function init(args)
  tid = tid or 0
  math.randomseed(seed())
  run = string.format("%08x", math.random(0, 0x7fffffff))
  per_request = tonumber(args[1]) or 1
  counter = 0
  phone_start = math.random(0, 63000000)
  wrk.headers["Content-Type"] = "application/json"
end

function event_json()
  counter = counter + 1
  local uuid = string.format("%s-%04x-4000-8000-%012x", run, tid, counter)
  return string.format(
    '{"event":{"uuid":"%s","event":"bench","distinct_id":"user-%d","properties":' ..
    '{"plan":"pro","n":%d},"timestamp":"2026-11-23T10:00:00Z"},' ..
    '"person":{"id":"person-%d","properties":{"phone":"%s","first_name":"Ada"}}}',
    uuid, counter % 1000, counter, counter % 1000, phone())
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
