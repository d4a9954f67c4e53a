"""Reconciliation's state: the fleet-wide lock and the cursors of its two sweeps."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys, storage_errors


@dataclass(frozen=True, slots=True)
class ExternalSweep:
    """Where the import of external messages stands (see app/services/reconcile.py)."""

    since: str | None  # ISO time the sweep lists from; None: never started
    page_uri: str | None  # the next page mid-sweep
    newest: str | None  # newest message seen mid-sweep (ISO)


@storage_errors
class ReconcileState:
    """The lock and cursors, each a plain Redis string under `keys.RECONCILE_*`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def try_lock(self, seconds: int) -> bool:
        """Take the run lock for `seconds` unless another process holds it."""
        return bool(await self._redis.set(keys.RECONCILE_LOCK, "1", nx=True, ex=max(seconds, 1)))

    async def stale_cursor(self, status: str) -> str:
        """The last delivery id checked in `status`'s index ('' = from the window's start)."""
        value: str | None = await self._redis.get(keys.RECONCILE_STALE_CURSOR_PREFIX + status)  # type: ignore[assignment]
        return value or ""

    async def set_stale_cursor(self, status: str, delivery_id: str) -> None:
        await self._redis.set(keys.RECONCILE_STALE_CURSOR_PREFIX + status, delivery_id)

    async def external_sweep(self) -> ExternalSweep:
        values: list[str | None] = await self._redis.mget(  # type: ignore[assignment]
            keys.RECONCILE_EXTERNAL_SINCE,
            keys.RECONCILE_EXTERNAL_PAGE,
            keys.RECONCILE_EXTERNAL_NEWEST,
        )
        since, page, newest = values
        return ExternalSweep(since, page or None, newest or None)

    async def start_following(self, since: str) -> None:
        """First run: follow what is sent from `since` on."""
        await self._redis.set(keys.RECONCILE_EXTERNAL_SINCE, since)

    async def save_page(self, page_uri: str, newest: str) -> None:
        """Progress mid-sweep, so that a crash resumes instead of restarting."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.RECONCILE_EXTERNAL_PAGE, page_uri)
            pipe.set(keys.RECONCILE_EXTERNAL_NEWEST, newest)
            await pipe.execute()

    async def finish_sweep(self, newest: str) -> None:
        """Sweep done: only now may the cursor pass what was processed."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.RECONCILE_EXTERNAL_SINCE, newest)
            pipe.delete(keys.RECONCILE_EXTERNAL_PAGE, keys.RECONCILE_EXTERNAL_NEWEST)
            await pipe.execute()
