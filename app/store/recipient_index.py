"""The recipient index: which deliveries went to a number, for listings by recipient and
replay's look at a recipient's other deliveries.

One field `<recipient>|<id>` per delivery in one of `keys.RECIPIENT_SHARDS` hashes (by the
number) per quarter of the retention (by the id's time); a hash expires whole a retention
after its quarter ends, so nothing prunes it. Small hashes stay in Redis' listpack
encoding: ~50 bytes a delivery instead of a sorted set per recipient (a key each, ~150
bytes for a number texted once). Skipped deliveries are not indexed (their log is read).
"""

from __future__ import annotations

import re
import zlib

from redis.asyncio import Redis

from app.store import keys
from app.store.records import now_ms


def _quarter_ms(retention_ms: int) -> int:
    return max(retention_ms // 4, 1)


def shard_of(recipient: str, created_ms: int, retention_ms: int) -> tuple[str, int]:
    """The hash the entry of a delivery created at `created_ms` (its id's time) goes to,
    and when that hash expires (epoch ms): a
    retention after its quarter ends, and never before a retention from now (a message
    imported long after it was sent)."""
    quarter_ms = _quarter_ms(retention_ms)
    quarter = created_ms // quarter_ms
    shard = zlib.crc32(recipient.encode()) % keys.RECIPIENT_SHARDS
    expires_ms = max((quarter + 1) * quarter_ms, now_ms()) + retention_ms
    return keys.recipient_shard(quarter, shard), expires_ms


async def recipient_ids(
    redis: Redis, recipient: str, retention_ms: int, since_ms: int | None = None
) -> list[str]:
    """The recipient's delivery ids still indexed (created from `since_ms` on), newest
    first, and those of the sorted set an earlier version kept for it."""
    quarter_ms, now = _quarter_ms(retention_ms), now_ms()
    oldest = max(now - retention_ms - quarter_ms, since_ms or 0)
    shard = zlib.crc32(recipient.encode()) % keys.RECIPIENT_SHARDS
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", recipient) + "|*"
    found: set[str] = set()
    # (one quarter ahead too: ids are stamped by each process's clock)
    for quarter in range(oldest // quarter_ms, now // quarter_ms + 2):
        async for entry, _ in redis.hscan_iter(
            keys.recipient_shard(quarter, shard), match=pattern, count=1000
        ):
            found.add(str(entry).rpartition("|")[2])
    bound = f"dl_{max(since_ms or 0, 0):012x}"
    earlier: list[str] = await redis.zrangebylex(  # type: ignore[assignment]
        keys.RECIPIENT_INDEX_PREFIX + recipient, f"[{bound}", "+"
    )
    found.update(earlier)
    return sorted((i for i in found if i >= bound), reverse=True)
