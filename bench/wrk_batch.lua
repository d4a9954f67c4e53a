-- wrk script: batches of 100 PostHog webhook events (a JSON array) per request.
-- Same events as wrk_events.lua, which it loads from its own folder.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_events.lua")

local events_init = init

function init(args)
  events_init({args[1] or "100"})
end
