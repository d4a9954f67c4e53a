-- Library: the hot-path scripts take one argument, a JSON array [keys, args], not dozens:
-- redis-py encodes arguments one by one in Python, which cost more than all the rest of
-- ingest. (Keys are not declared to Redis: like every multi-key script here, these need
-- a standalone or Sentinel-managed Redis, not Cluster.)
local input = cjson.decode(ARGV[1])
local KEYS, ARGV = input[1], input[2]
