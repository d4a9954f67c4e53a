"""Events received, counted per minute in memory and added to the deployment's counts in
Redis every few seconds: the console's "events received" without a write per request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

from app.store import StorageError
from app.store.stats import EVENT_COUNT_HOURS, EventCounts

log = logging.getLogger(__name__)


class EventTally:
    """This process's events received, waiting to be added to the store's counts."""

    def __init__(self, counts: EventCounts) -> None:
        self._counts = counts
        self._pending: Counter[int] = Counter()  # epoch minute → events

    def add(self, events: int) -> None:
        """Count `events` received now (a dict update: cheap on the request path)."""
        self._pending[int(time.time() // 60)] += events

    async def flush(self) -> None:
        """Add what was counted to the store. Kept for the next flush if Redis fails (minutes
        older than the console's longest window are dropped instead)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            await self._counts.add(dict(pending))
        except StorageError as exc:
            oldest = int(time.time() // 60) - EVENT_COUNT_HOURS * 60
            self._pending.update({m: n for m, n in pending.items() if m > oldest})
            log.warning("events received: counts kept for the next flush: %s", exc)

    async def run(self, interval_s: float, stopping: asyncio.Event) -> None:
        """Flush every `interval_s` seconds until `stopping` is set, then once more."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)
            await self.flush()
