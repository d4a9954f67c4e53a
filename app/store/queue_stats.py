"""What the send queue holds right now, for /metrics and the console: read when asked, in
one round trip, never on the hot path."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.pauses import count_active
from app.store.records import DeliveryStatus

# Deliveries not yet handed to the provider (or held): counted per status from the status indexes.
WAITING_STATUSES: tuple[DeliveryStatus, ...] = (
    "queued",
    "sending",
    "retrying",
    "scheduled",
    "held",
)


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The queue at one instant."""

    depth: int  # stream entries: waiting to be read, or read and not yet acknowledged
    delayed: int  # retries waiting for their backoff and messages held until their time
    oldest_age_s: float  # how long the oldest stream entry has waited (0 when empty)
    oldest_added_ms: int | None  # when it was added (epoch ms; None when empty)
    by_status: dict[DeliveryStatus, int]
    unknown: int  # attempts whose outcome is unknown, waiting for the resolver
    paused_destinations: int = 0  # pauses in force (pauses.py)


@storage_errors
class QueueStats:
    """Reads the queue's size and age, and the pauses in force (one pipeline of cheap
    commands; the pauses hash holds one field per paused destination)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def snapshot(self) -> QueueSnapshot:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.SEND_STREAM)
            pipe.xrange(keys.SEND_STREAM, count=1)
            pipe.zcard(keys.DELAYED_SENDS)
            for status in WAITING_STATUSES:
                pipe.zcard(keys.STATUS_INDEX_PREFIX + status)
            pipe.zcard(keys.STATUS_INDEX_PREFIX + "unknown")
            pipe.hgetall(keys.PAUSES)
            reply: list[Any] = await pipe.execute()
        depth, first, delayed, *counts, unknown, pauses = reply
        oldest_age_s, added_ms = 0.0, None
        if first:
            # A stream entry id is "<ms when it was added>-<seq>": the wait needs no lookup.
            entry_id = first[0][0]
            added_ms = int(str(entry_id).split("-", 1)[0])
            oldest_age_s = max(0.0, time.time() - added_ms / 1000)
        return QueueSnapshot(
            depth=int(depth),
            delayed=int(delayed),
            oldest_age_s=oldest_age_s,
            oldest_added_ms=added_ms,
            by_status=dict(zip(WAITING_STATUSES, (int(c) for c in counts), strict=True)),
            unknown=int(unknown),
            paused_destinations=count_active(pauses, int(time.time() * 1000)),
        )
