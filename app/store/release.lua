-- A delivery that became final without sending (opted out, canceled) lets go of what it
-- held while pending (after dedupe_marks.lua): its dedupe mark moves to its bucket (its
-- time counts from now), its window is freed — each only if it is still this delivery's
-- (compare-and-set) — and it leaves its recipient's frequency caps.
-- KEYS: dedupe, throttle, cap set ('' = none each), dedupe bucket.
-- ARGV: id, the mark's field in the bucket, when the bucket expires (ms).
settle_mark(KEYS[1], KEYS[4], ARGV[2], ARGV[1], ARGV[3])
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if KEYS[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
