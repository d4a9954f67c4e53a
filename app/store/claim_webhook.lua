-- Claims a provider's webhook and applies its suppression change, atomically: a replay (or
-- the provider's retry of one already applied) changes nothing, and a claimed webhook's change
-- is never lost between the two. The checks come before any write, and the claim keys
-- are fresh strings: nothing here fails half-way but for a suppression list of the wrong
-- type, which fails the claim with it (the change is made before the claim is taken).
-- KEYS: suppression list, then the claim keys (none: always new).
-- ARGV: claim ttl s, change ('' | 'add' | 'remove'), number, suppression value.
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
if ARGV[2] == 'add' then redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[4])
elseif ARGV[2] == 'remove' then redis.call('HDEL', KEYS[1], ARGV[3]) end
for i = 2, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[1]) end
return 1
