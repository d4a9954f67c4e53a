"""The pause scripts run directly: the worker's claim sees a pause, a hold parks and
acknowledges (or, failing half-way, leaves the entry pending: nothing lost), a resume
releases only what still waits, a Twilio code's pause does not replace one in force."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from app.store import StorageError, keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.pauses import PauseBook, pause_now
from app.store.queue import SendQueue
from app.store.records import now_ms
from tests.conftest import REDIS_URL
from tests.store.test_scripts import delivery


@pytest.fixture
async def parts(
    redis_client: redis.Redis,
) -> AsyncIterator[tuple[DeliveryLog, SendQueue, PauseBook]]:
    client = connect(REDIS_URL)
    queue = SendQueue(client, "test")
    await queue.ensure_group()
    yield DeliveryLog(client, 60, 3600), queue, PauseBook(client, recheck_s=60)
    await client.aclose()


async def test_a_claim_of_a_paused_destination_is_held_not_sent(
    parts: tuple[DeliveryLog, SendQueue, PauseBook], redis_client: redis.Redis
) -> None:
    log, queue, book = parts
    [admission] = await log.admit([delivery()])
    await book.pause(pause_now("welcome", "operator", "test"), replace=True)
    [queued] = await queue.read(10, 0)
    verdict, record = await log.begin_send(queued.delivery_id, resolve_after_s=1)
    assert verdict == "paused" and record is not None
    assert record.attempts == 0  # no attempt was recorded: nothing left
    await book.hold(record, queued.entry_id, "destination paused")
    assert redis_client.hget(keys.delivery(admission.delivery_id), "status") == "held"
    assert redis_client.xlen(keys.SEND_STREAM) == 0
    due = redis_client.zscore(keys.DELAYED_SENDS, admission.delivery_id)
    assert due is not None and 55_000 < due - now_ms() <= 60_000  # the recheck
    # The throttle window is still the delivery's own.
    assert redis_client.get(record.throttle_key or "") == admission.delivery_id

    lifted, released = await book.resume("welcome")
    assert lifted is not None and released == 1
    assert redis_client.zscore(keys.DELAYED_SENDS, admission.delivery_id) <= now_ms()  # type: ignore[operator]
    await queue.promote_due()
    [again] = await queue.read(10, 0)
    verdict, record = await log.begin_send(again.delivery_id, resolve_after_s=1)
    assert verdict == "send" and record is not None and record.attempts == 1


async def test_a_bounded_pause_holds_until_its_end(
    parts: tuple[DeliveryLog, SendQueue, PauseBook], redis_client: redis.Redis
) -> None:
    log, queue, book = parts
    [admission] = await log.admit([delivery()])
    until = now_ms() + 5_000
    await book.pause(pause_now("welcome", "operator", "t", until_ms=until), replace=True)
    [queued] = await queue.read(10, 0)
    _, record = await log.begin_send(queued.delivery_id, resolve_after_s=1)
    assert record is not None
    await book.hold(record, queued.entry_id, "destination paused")
    assert redis_client.zscore(keys.DELAYED_SENDS, admission.delivery_id) == until


async def test_a_hold_failing_half_way_leaves_the_entry_pending(
    parts: tuple[DeliveryLog, SendQueue, PauseBook], redis_client: redis.Redis
) -> None:
    log, queue, book = parts
    await log.admit([delivery()])
    await book.pause(pause_now("welcome", "operator", "test"), replace=True)
    [queued] = await queue.read(10, 0)
    _, record = await log.begin_send(queued.delivery_id, resolve_after_s=1)
    assert record is not None
    redis_client.set(keys.held_for("welcome"), "not a sorted set")
    with pytest.raises(StorageError):
        await book.hold(record, queued.entry_id, "destination paused")
    # Not acknowledged: the entry is reclaimed and held again; nothing is lost.
    assert redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)["pending"] == 1
    redis_client.delete(keys.held_for("welcome"))
    await book.hold(record, queued.entry_id, "destination paused")
    assert redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)["pending"] == 0
    assert redis_client.zcard(keys.DELAYED_SENDS) == 1


async def test_resume_releases_only_what_still_waits(
    parts: tuple[DeliveryLog, SendQueue, PauseBook], redis_client: redis.Redis
) -> None:
    log, queue, book = parts
    admissions = await log.admit([delivery("a"), delivery("b", recipient="+14155550002")])
    await book.pause(pause_now("welcome", "operator", "test"), replace=True)
    for queued in await queue.read(10, 0):
        _, record = await log.begin_send(queued.delivery_id, resolve_after_s=1)
        assert record is not None
        await book.hold(record, queued.entry_id, "destination paused")
    # One of them already went back to the queue (its recheck came).
    redis_client.zrem(keys.DELAYED_SENDS, admissions[0].delivery_id)
    _, released = await book.resume("welcome")
    assert released == 1
    assert redis_client.zrange(keys.DELAYED_SENDS, 0, -1) == [admissions[1].delivery_id]


async def test_a_code_does_not_replace_a_pause_in_force(
    parts: tuple[DeliveryLog, SendQueue, PauseBook],
) -> None:
    _, _, book = parts
    first, written = await book.pause(
        pause_now("welcome", "error_code", "bad credentials", code=20003), replace=False
    )
    assert written
    again, written = await book.pause(
        pause_now("welcome", "error_code", "account suspended", code=20005), replace=False
    )
    assert not written and again == first
    # An operator's pause replaces it; resuming one not paused changes nothing.
    operator, written = await book.pause(pause_now("welcome", "operator", "mine"), replace=True)
    assert written and (await book.get("welcome")) == operator
    assert (await book.resume("welcome"))[0] == operator
    assert await book.resume("welcome") == (None, 0)
