"""Read-only figures for the console, from what the log already keeps.

Nothing here is written on the hot path: the counts come from the delivery indexes
(sorted sets of time-ordered ids, so a time range is a lexical range) and the records they
point to, read when someone opens the console. (The queue's figures: queue_stats.py.)
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, get_args

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.records import DeliveryStatus, id_bound

STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)
# Texts that left: Twilio took them (what it later said of them included), or test mode
# recorded them. Their segments are what the account is billed for.
TEXTED: frozenset[str] = frozenset({"sent", "delivered", "undelivered", "read", "mocked"})
# At most this many of a destination's deliveries are read to count its outcomes.
OUTCOME_SAMPLE = 2000
# Events received are kept per minute for this long (the console's longest window + 1 h).
EVENT_COUNT_HOURS = 25


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Deliveries created in a time range, counted by their status now (skipped ones by
    reason); `sampled` is True when only the newest `OUTCOME_SAMPLE` were read."""

    total: int
    by_status: dict[str, int]
    skipped_by_reason: dict[str, int]
    sampled: bool = False
    texted: int = 0  # deliveries that left (TEXTED statuses)
    segments: int = 0  # their segments


@storage_errors
class DeliveryStats:
    """Counts for the console's overview and destination pages (one round trip each)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def outcomes_since(self, *windows_s: int) -> list[Outcomes]:
        """For each window (seconds back from now): all deliveries created in it, by status
        now (skipped ones by reason), counted over the newest `OUTCOME_SAMPLE` records."""
        return [await self._outcomes(keys.DELIVERY_INDEX, window) for window in windows_s]

    async def destination_totals(self, destination_ids: list[str], window_s: int) -> list[int]:
        """Deliveries created in the last `window_s` seconds for each destination."""
        bound = id_bound(time.time_ns() // 1_000_000 - window_s * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for destination in destination_ids:
                pipe.zlexcount(keys.DESTINATION_INDEX_PREFIX + destination, f"[{bound}", "+")
            replies: list[int] = await pipe.execute()
        return [int(n) for n in replies]

    async def destination_outcomes(self, destination_id: str, window_s: int) -> Outcomes:
        """One destination's deliveries created in the window, by status (and skipped ones
        by reason), counted over its newest `OUTCOME_SAMPLE` records."""
        return await self._outcomes(keys.DESTINATION_INDEX_PREFIX + destination_id, window_s)

    async def _outcomes(self, index: str, window_s: int) -> Outcomes:
        # Counted from the records themselves: the commonest statuses (mocked, delivered,
        # skipped…) keep no index of their own (a lean record, see UNINDEXED_STATUSES).
        bound = id_bound(time.time_ns() // 1_000_000 - window_s * 1000)
        ids: list[str] = await self._redis.zrevrangebylex(  # type: ignore[assignment]
            index, "+", f"[{bound}", 0, OUTCOME_SAMPLE
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zlexcount(index, f"[{bound}", "+")
            for delivery_id in ids:
                pipe.hmget(keys.delivery(delivery_id), "status", "reason", "segments")
            replies: list[Any] = await pipe.execute()
        rows = [row for row in replies[1:] if row[0]]  # expired records read as None
        by_status = Counter(status for status, _, _ in rows)
        reasons = Counter(reason for status, reason, _ in rows if status == "skipped" and reason)
        texted = [int(segments or 1) for status, _, segments in rows if status in TEXTED]
        return Outcomes(
            int(replies[0]),
            dict(by_status),
            dict(reasons),
            len(ids) == OUTCOME_SAMPLE,
            texted=len(texted),
            segments=sum(texted),
        )


@storage_errors
class EventCounts:
    """Events received by every process of the deployment, per minute, for the console.
    Written by each process's tally every few seconds, never on the request path."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, per_minute: dict[int, int]) -> None:
        """Add each minute's count (epoch minutes → events) in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute, count in per_minute.items():
                key = keys.events_received(minute // 60)
                pipe.hincrby(key, str(minute), count)
                pipe.expire(key, EVENT_COUNT_HOURS * 3600)
            await pipe.execute()

    async def received_since(self, *windows_s: int) -> list[int]:
        """For each window (seconds back from now, at most a day): events received in it,
        counted by whole minutes (the current minute included)."""
        now_minute = int(time.time() // 60)
        hours = range(now_minute // 60 - EVENT_COUNT_HOURS + 1, now_minute // 60 + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(keys.events_received(hour))
            replies: list[dict[str, str]] = await pipe.execute()
        counts = {int(m): int(n) for reply in replies for m, n in reply.items()}
        return [
            sum(n for m, n in counts.items() if m > now_minute - window // 60)
            for window in windows_s
        ]
