"""The durable send queue: a Redis Stream read by a consumer group, plus a delayed set.

Why Streams rather than a job library (arq, saq): admission must enqueue in the same
atomic Lua step that dedupes and claims the throttle window, which a library's own
enqueue call cannot join; and a consumer group already gives what durability needs —
entries stay pending until acknowledged, and XAUTOCLAIM hands a dead worker's entries to
a live one. Retries wait in a sorted set scored by due time and are moved back to the
stream when due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.store import keys, storage_errors
from app.store.scripts import lua

_PROMOTE_DUE = lua("promote_due.lua")


@dataclass(frozen=True, slots=True)
class QueuedSend:
    """One stream entry: which delivery to send, and the entry to acknowledge after."""

    entry_id: str
    delivery_id: str


@storage_errors
class SendQueue:
    """Consumer side of the send stream (the producer side is admission's Lua script)."""

    def __init__(self, redis: Redis, consumer: str) -> None:
        self._redis = redis
        self.consumer = consumer
        self._promote = redis.register_script(_PROMOTE_DUE)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if they do not exist yet."""
        try:
            await self._redis.xgroup_create(
                keys.SEND_STREAM, keys.SEND_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int) -> list[QueuedSend]:
        """New entries for this consumer, waiting up to `block_ms` for the first one."""
        reply: Any = await self._redis.xreadgroup(
            keys.SEND_GROUP,
            self.consumer,
            {keys.SEND_STREAM: ">"},
            count=count,
            block=block_ms,
        )
        return [entry for _stream, entries in reply or [] for entry in _entries(entries)]

    async def reclaim(self, min_idle_ms: int, count: int = 100) -> list[QueuedSend]:
        """Take over entries another consumer read but never acknowledged (it died)."""
        reply = await self._redis.xautoclaim(
            keys.SEND_STREAM,
            keys.SEND_GROUP,
            self.consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=count,
        )
        return _entries(reply[1])

    async def ack(self, entry_id: str) -> None:
        """Acknowledge and delete an entry whose delivery needs nothing more."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(keys.SEND_STREAM, keys.SEND_GROUP, entry_id)
            pipe.xdel(keys.SEND_STREAM, entry_id)
            await pipe.execute()

    async def promote_due(self, limit: int = 500) -> int:
        """Move delayed deliveries whose time has come back onto the stream."""
        moved = await self._promote(
            keys=[keys.DELAYED_SENDS, keys.SEND_STREAM],
            args=[int(time.time() * 1000), limit],
        )
        return int(moved)


def _entries(entries: Any) -> list[QueuedSend]:
    # XAUTOCLAIM reports entries deleted meanwhile as (id, None): nothing to send for them.
    return [
        QueuedSend(entry_id, fields["delivery"])
        for entry_id, fields in entries
        if fields and "delivery" in fields
    ]
