"""hold_send.lua, directly: a claimed attempt taken back (quiet hours, sender pacing) —
its count undone, parked or final, the stream entry acknowledged — and nothing done to a
delivery that has moved on; what it leaves when it fails half-way."""

from __future__ import annotations

import pytest
import redis

from app.store import StorageError, keys
from app.store.deliveries import DeliveryLog
from app.store.queue import SendQueue
from app.store.records import DeliveryRecord
from tests.store.test_scripts import delivery, store

__all__ = ["store"]  # the fixture, shared with test_scripts


async def claimed(log: DeliveryLog, queue: SendQueue) -> tuple[str, DeliveryRecord]:
    """Admit one delivery, read its entry and begin its first attempt."""
    await queue.ensure_group()
    [admission] = await log.admit([delivery()])
    [entry] = await queue.read(1, 100)
    verdict, record = await log.begin_send(admission.delivery_id, resolve_after_s=60)
    assert verdict == "send" and record is not None and record.attempts == 1
    return entry.entry_id, record


async def test_parked_until_its_time_with_the_attempt_undone(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    entry_id, record = await claimed(log, queue)
    await log.hold_send(
        record,
        entry_id,
        "queued",
        detail="paced: its turn at …",
        due_ms=123_456,
        paced_ms=123_456,
    )
    held = await log.get(record.id)
    assert held is not None
    assert (held.status, held.attempts, held.paced) == ("queued", 0, "1:123456")
    assert redis_client.zscore(keys.DELAYED_SENDS, held.id) == 123_456
    assert redis_client.xlen(keys.SEND_STREAM) == 0  # acknowledged and deleted
    assert redis_client.ttl(keys.delivery(held.id)) == -1  # pending: never expires
    assert held.throttle_key and redis_client.get(held.throttle_key) == held.id  # window held
    # Its next claim is attempt 1 again, the slot reserved for it.
    redis_client.zrem(keys.DELAYED_SENDS, held.id)
    verdict, again = await log.begin_send(held.id, resolve_after_s=60)
    assert verdict == "send" and again is not None and again.attempts == 1


async def test_final_unsent_frees_the_window_and_counts_down(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    entry_id, record = await claimed(log, queue)
    await log.hold_send(
        record,
        entry_id,
        "skipped",
        detail="quiet hours 21:00-08:00 in UTC (as admitted): dropped",
        reason="quiet_hours",
    )
    held = await log.get(record.id)
    assert held is not None and (held.status, held.reason) == ("skipped", "quiet_hours")
    assert record.throttle_key and redis_client.get(record.throttle_key) is None
    assert 0 < redis_client.ttl(keys.delivery(held.id)) <= 3600
    assert held.dedupe_key and 0 < redis_client.pttl(held.dedupe_key) <= 60_000
    assert redis_client.zcard(keys.DELAYED_SENDS) == 0


async def test_a_delivery_that_moved_on_is_only_acknowledged(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    entry_id, record = await claimed(log, queue)
    redis_client.hset(keys.delivery(record.id), "attempts", "2")
    await log.hold_send(record, entry_id, "scheduled", detail="held", due_ms=1)
    held = await log.get(record.id)
    assert held is not None and (held.status, held.attempts) == ("sending", 2)
    assert redis_client.zcard(keys.DELAYED_SENDS) == 0
    assert redis_client.xlen(keys.SEND_STREAM) == 0


async def test_failing_half_way_leaves_the_entry_pending(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    entry_id, record = await claimed(log, queue)
    redis_client.set(keys.DELAYED_SENDS, "not a sorted set")
    with pytest.raises(StorageError):
        await log.hold_send(record, entry_id, "scheduled", detail="held", due_ms=1)
    # The entry is not acknowledged: it is reclaimed, and the delivery found `scheduled`
    # with its count undone is claimed afresh (nothing was sent).
    pending = redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)
    assert pending["pending"] == 1
