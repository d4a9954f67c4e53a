"""What replaying failed deliveries reads and writes: candidates from the status indexes
in a time range, a marker per replayed delivery, and the recipient's other deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.recipient_index import recipient_ids
from app.store.records import id_bound

# How far before a delivery its event's other deliveries are looked for (an event's
# deliveries are admitted together; a sender retrying it comes back within hours).
_REACHED_LOOKBACK_MS = 86_400_000
_REACHED_SCAN = 1000  # the recipient's deliveries read at most, per replayed delivery


@storage_errors
class ReplayLog:
    """The store side of replay; records themselves are read through `DeliveryLog`."""

    def __init__(self, redis: Redis, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s

    async def candidates(
        self,
        statuses: Sequence[str],
        since_ms: int | None,
        until_ms: int | None,
        after: str | None,
        limit: int,
    ) -> list[str]:
        """Ids in any of these status indexes, created in [since, until), after the id
        `after`, oldest first (at most `limit`)."""
        low = f"({after}" if after else (f"[{id_bound(since_ms)}" if since_ms else "-")
        high = f"({id_bound(until_ms)}" if until_ms is not None else "+"
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in statuses:
                pipe.zrangebylex(keys.STATUS_INDEX_PREFIX + status, low, high, start=0, num=limit)
            pages: list[list[str]] = await pipe.execute()
        return sorted({i for page in pages for i in page})[:limit]

    async def replayed_as(self, delivery_ids: Sequence[str]) -> dict[str, str]:
        """The replay of each of these deliveries that was replayed already."""
        if not delivery_ids:
            return {}
        names = [keys.replayed(i) for i in delivery_ids]
        found: list[str | None] = await self._redis.mget(names)  # type: ignore[assignment]
        return {i: new for i, new in zip(delivery_ids, found, strict=True) if new}

    async def mark(self, delivery_id: str, replay_id: str) -> None:
        """Remember that `replay_id` replays `delivery_id` (as long as records are kept)."""
        await self._redis.set(keys.replayed(delivery_id), replay_id, ex=self._retention_s)

    async def near_deliveries_to(self, recipient: str, created_ms: int) -> list[str]:
        """The recipient's deliveries from a day before `created_ms` on (bounded)."""
        ids = await recipient_ids(
            self._redis,
            recipient,
            self._retention_s * 1000,
            since_ms=created_ms - _REACHED_LOOKBACK_MS,
        )
        return sorted(ids)[:_REACHED_SCAN]
