-- Library: a delivery's dedupe mark once it is final. While the delivery is pending its mark
-- is a key of its own that never expires; final, the mark moves (if that key is still this
-- delivery's) into a bucket of marks — a small hash expiring whole (keys.dedupe_bucket):
-- ~80 bytes instead of a key with an expiry. The bucket is written before the key is
-- deleted: failing half-way leaves the mark in both places, never in neither.
local function settle_mark(key, bucket, field, id, bucket_expires_at)
  if key == '' or redis.call('GET', key) ~= id then return end
  redis.call('HSET', bucket, field, id)
  redis.call('PEXPIREAT', bucket, bucket_expires_at)
  redis.call('DEL', key)
end
