"""Events received per minute: added by each process's tally, summed by window."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis

from app.services.event_tally import EventTally
from app.store import StorageUnavailable
from app.store.connection import connect
from app.store.stats import EventCounts
from tests.conftest import REDIS_URL


@pytest.fixture
async def counts(redis_client: redis.Redis) -> AsyncIterator[EventCounts]:
    client = connect(REDIS_URL)
    yield EventCounts(client)
    await client.aclose()


async def test_windows_count_whole_minutes(counts: EventCounts) -> None:
    now = int(time.time() // 60)
    await counts.add({now: 3, now - 30: 4, now - 90: 5, now - 23 * 60: 6, now - 25 * 60: 7})
    await counts.add({now: 1})  # another process, the same minute
    hour, day = await counts.received_since(3600, 86_400)
    assert (hour, day) == (8, 19)  # 25 hours ago is outside both


async def test_a_failed_flush_keeps_the_counts_for_the_next(counts: EventCounts) -> None:
    class Down(EventCounts):
        async def add(self, per_minute: dict[int, int]) -> None:
            raise StorageUnavailable("Redis is down")

    tally = EventTally(Down(None))  # type: ignore[arg-type]
    tally.add(2)
    await tally.flush()  # fails: kept
    tally.add(1)
    tally._counts = counts  # Redis is back
    await tally.flush()
    assert await counts.received_since(60) == [3]
    await tally.flush()  # nothing pending: nothing added twice
    assert await counts.received_since(60) == [3]
