"""Each Lua script of the store, run directly against Redis through the store object that
owns it — including what it leaves behind when a command in it fails half-way (Redis does
not roll a script back)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis

from app.guard import CapRule, Caps, VelocityLimit
from app.store import StorageError, keys
from app.store.callbacks import CallbackLog, SuppressionChange, Webhook
from app.store.connection import connect
from app.store.deliveries import DeliveryLog, waitaof_available
from app.store.queue import SendQueue
from app.store.records import ExternalMessage, NewDelivery, SendOutcome, id_created_ms
from app.store.suppressions import SuppressionList, suppression_value
from tests.conftest import REDIS_URL

PHONE = "+14155552671"


@pytest.fixture
async def store(redis_client: redis.Redis) -> AsyncIterator[tuple[DeliveryLog, SendQueue]]:
    client = connect(REDIS_URL)
    yield DeliveryLog(client, dedupe_ttl_s=60, retention_s=3600), SendQueue(client, "test")
    await client.aclose()


@pytest.fixture
async def callbacks(redis_client: redis.Redis) -> AsyncIterator[CallbackLog]:
    client = connect(REDIS_URL)
    yield CallbackLog(client, remember_s=600)
    await client.aclose()


def delivery(event: str = "e1", **overrides: object) -> NewDelivery:
    new = NewDelivery(
        destination_id="welcome",
        mode="live",
        event_identity=event,
        event_uuid=event,
        event_name="signed up",
        recipient=PHONE,
        body="Hi",
        encoding="GSM-7",
        segments=1,
        from_number="+15005550006",
        throttle_scope="destination",
        throttle_window_ms=3_600_000,
    )
    return replace(new, **overrides)  # type: ignore[arg-type]


def our_keys(client: redis.Redis) -> list[str]:
    return sorted(client.keys(keys.PREFIX + "*"))  # type: ignore[arg-type]


async def test_admission_failing_half_way_leaves_nothing(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    # The queued status index taken by a key of the wrong type: admission's fourth write
    # fails, after the dedupe mark, the throttle window, the record and two indexes.
    redis_client.set(keys.STATUS_INDEX_PREFIX + "queued", "not a sorted set")
    with pytest.raises(StorageError, match="undone"):
        await log.admit([delivery()])
    assert our_keys(redis_client) == [keys.STATUS_INDEX_PREFIX + "queued"]
    # So the sender's retry is admitted, not a "duplicate" of a message never queued.
    redis_client.delete(keys.STATUS_INDEX_PREFIX + "queued")
    [admission] = await log.admit([delivery()])
    assert admission.decision == "queued"
    assert redis_client.xlen(keys.SEND_STREAM) == 1


async def test_a_chunk_stops_at_the_failing_delivery(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    redis_client.set(keys.DESTINATION_INDEX_PREFIX + "broken", "x")
    first = delivery("ok")
    second = delivery("bad", destination_id="broken", recipient="+14155550001")
    with pytest.raises(StorageError):
        await log.admit([first, second])
    # The first stands, whole; nothing of the second is left.
    [entry] = redis_client.xrange(keys.SEND_STREAM)
    assert redis_client.hget(keys.delivery(entry[1]["delivery"]), "status") == "queued"
    assert not redis_client.exists(keys.dedupe("broken", "bad"))
    assert redis_client.zcard(keys.DELIVERY_INDEX) == 1
    redis_client.delete(keys.DESTINATION_INDEX_PREFIX + "broken")
    retried = await log.admit([first, second])
    assert [a.decision for a in retried] == ["duplicate", "queued"]


async def test_the_preview_decides_as_admission_and_writes_nothing(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    assert (await log.preview(delivery())).check.verdict == "pass"
    assert our_keys(redis_client) == []
    [held] = await log.admit([delivery()])
    before = {k: redis_client.dump(k) for k in our_keys(redis_client)}
    preview = await log.preview(delivery())
    assert {k: redis_client.dump(k) for k in our_keys(redis_client)} == before
    assert preview.duplicate_of == held.delivery_id
    assert preview.check.verdict == "throttled" and preview.check.held_by == held.delivery_id
    [admitted] = await log.admit([delivery("e2")])
    assert admitted.decision == "throttled"
    redis_client.hset(keys.SUPPRESSIONS, PHONE, suppression_value("api").decode())
    assert (await log.preview(delivery("e3"))).check.verdict == "opted_out"
    assert (await log.admit([delivery("e3")]))[0].decision == "opted_out"


async def test_begin_send_verdicts(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    assert await log.begin_send("dl_missing", resolve_after_s=70) == ("missing", None)
    [a] = await log.admit([delivery("a", throttle_scope=None)])
    verdict, record = await log.begin_send(a.delivery_id, resolve_after_s=70)
    assert verdict == "send" and record is not None and record.status == "sending"
    [b] = await log.admit([delivery("b", throttle_scope=None)])
    redis_client.hset(keys.SUPPRESSIONS, PHONE, suppression_value("api").decode())
    assert await log.begin_send(b.delivery_id, resolve_after_s=70) == ("opted_out", None)
    assert redis_client.hget(keys.delivery(b.delivery_id), "reason") == "opted_out"
    assert await log.begin_send(b.delivery_id, resolve_after_s=70) == ("done", None)


async def test_finish_send_failing_half_way_is_found_done_when_reclaimed(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    await queue.ensure_group()
    [a] = await log.admit([delivery()])
    [queued] = await queue.read(10, 100)
    _, record = await log.begin_send(a.delivery_id, resolve_after_s=70)
    assert record is not None
    redis_client.delete(keys.SUPPRESSIONS)
    redis_client.set(keys.SUPPRESSIONS, "not a hash")
    with pytest.raises(StorageError):
        await log.finish_send(
            record,
            queued.entry_id,
            "failed",
            outcome=SendOutcome(error_code=21610, error_message="unsubscribed"),
            final=True,
            throttle="release",
            suppression=suppression_value("twilio_21610"),
        )
    # The outcome is recorded and the window freed; the entry is still pending, so it is
    # reclaimed — and then found done, never sent twice.
    assert redis_client.hget(keys.delivery(a.delivery_id), "status") == "failed"
    assert not redis_client.exists(record.throttle_key or "")
    assert redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)["pending"] == 1
    assert await log.begin_send(a.delivery_id, resolve_after_s=70) == ("done", None)


async def test_cancel_scheduled(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, queue = store
    due = int(time.time() * 1000) + 60_000
    [held] = await log.admit([delivery("held", due_ms=due)])
    assert held.decision == "scheduled"
    assert await log.cancel_scheduled("dl_missing") == (False, "missing")
    assert await log.cancel_scheduled(held.delivery_id) == (True, "canceled")
    assert await log.cancel_scheduled(held.delivery_id) == (False, "canceled")
    # Promoted meanwhile (no longer in the delayed set): too late to cancel.
    [late] = await log.admit([delivery("late", due_ms=due, throttle_scope=None)])
    redis_client.zrem(keys.DELAYED_SENDS, late.delivery_id)
    assert await log.cancel_scheduled(late.delivery_id) == (False, "queued")
    assert await queue.promote_due() == 0


async def test_promote_due_moves_only_what_is_due(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    _, queue = store
    now = int(time.time() * 1000)
    redis_client.zadd(keys.DELAYED_SENDS, {"dl_due": now - 1, "dl_later": now + 60_000})
    assert await queue.promote_due() == 1
    assert [e[1]["delivery"] for e in redis_client.xrange(keys.SEND_STREAM)] == ["dl_due"]
    assert redis_client.zrange(keys.DELAYED_SENDS, 0, -1) == ["dl_later"]


async def test_a_status_change_failing_half_way_leaves_the_record_as_it_was(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    [a] = await log.admit([delivery()])
    _, record = await log.begin_send(a.delivery_id, resolve_after_s=70)
    assert record is not None
    await log.finish_send(record, "0-1", "sent", final=True, outcome=SendOutcome("SM1", "queued"))
    redis_client.set(keys.STATUS_INDEX_PREFIX + "undelivered", "x")
    with pytest.raises(StorageError):
        await log.apply_twilio_status(a.delivery_id, "undelivered", None, "callback")
    kept = redis_client.hgetall(keys.delivery(a.delivery_id))
    assert (kept["status"], kept["twilio_status"]) == ("sent", "queued")
    assert redis_client.zscore(keys.STATUS_INDEX_PREFIX + "sent", a.delivery_id) is not None
    # So the report applies once Redis takes it (it is not "stale").
    redis_client.delete(keys.STATUS_INDEX_PREFIX + "undelivered")
    assert await log.apply_twilio_status(a.delivery_id, "undelivered", None, "again") == "applied"
    assert redis_client.zscore(keys.STATUS_INDEX_PREFIX + "sent", a.delivery_id) is None


async def test_promotion_failing_half_way_loses_nothing(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    _, queue = store
    redis_client.zadd(keys.DELAYED_SENDS, {"dl_due": 1})
    redis_client.set(keys.SEND_STREAM, "not a stream")
    with pytest.raises(StorageError):
        await queue.promote_due()
    assert redis_client.zrange(keys.DELAYED_SENDS, 0, -1) == ["dl_due"]


async def test_cancel_failing_half_way_keeps_the_delivery_held_and_unsent(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    [held] = await log.admit([delivery(due_ms=int(time.time() * 1000) + 60_000)])
    # The canceled index is written before the record: failing there changes nothing.
    redis_client.set(keys.STATUS_INDEX_PREFIX + "canceled", "x")
    with pytest.raises(StorageError):
        await log.cancel_scheduled(held.delivery_id)
    assert redis_client.hget(keys.delivery(held.delivery_id), "status") == "scheduled"
    assert redis_client.zscore(keys.DELAYED_SENDS, held.delivery_id) is not None
    redis_client.delete(keys.STATUS_INDEX_PREFIX + "canceled")
    assert await log.cancel_scheduled(held.delivery_id) == (True, "canceled")
    # A canceled delivery is never sent, however it reaches the queue.
    assert await log.begin_send(held.delivery_id, resolve_after_s=70) == ("done", None)


def external(sid: str = "SM" + "e" * 32) -> ExternalMessage:
    return ExternalMessage(
        sid=sid,
        recipient=PHONE,
        body="from elsewhere",
        encoding="GSM-7",
        segments=1,
        from_number="+15005550006",
        messaging_service_sid="",
        twilio_status="delivered",
        error_code=None,
        error_message="",
        sent_ms=int(time.time() * 1000),
    )


async def test_import_external_once_and_undone_when_it_fails(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    redis_client.set(keys.DESTINATION_INDEX_PREFIX + "$external", "x")
    with pytest.raises(StorageError, match="undone"):
        await log.import_external(external(), "$external")
    assert our_keys(redis_client) == [keys.DESTINATION_INDEX_PREFIX + "$external"]
    redis_client.delete(keys.DESTINATION_INDEX_PREFIX + "$external")
    assert await log.import_external(external(), "$external") is True
    assert await log.import_external(external(), "$external") is False
    [record] = (await log.query(destination="$external")).items
    assert (record.status, record.twilio_status, record.body) == (
        "external",
        "delivered",
        "from elsewhere",
    )


async def test_webhook_claims(callbacks: CallbackLog, redis_client: redis.Redis) -> None:
    stop = Webhook("inbound", "SM1", "received", token="t1")
    change = SuppressionChange(PHONE, "add", "inbound", "STOP")
    assert await callbacks.apply_once(stop, change) is True
    assert redis_client.hexists(keys.SUPPRESSIONS, PHONE)
    redis_client.hdel(keys.SUPPRESSIONS, PHONE)
    assert await callbacks.apply_once(stop, change) is False  # a replay
    assert await callbacks.apply_once(replace(stop, token=None), change) is False
    assert await callbacks.apply_once(Webhook("inbound", "", "received", "t1"), change) is False
    assert not redis_client.hexists(keys.SUPPRESSIONS, PHONE)
    # Forgotten (its handling failed): Twilio's retry goes through.
    await callbacks.forget(stop)
    assert await callbacks.apply_once(stop, None) is True
    # Without a SID or a token nothing identifies it: always applied.
    anonymous = Webhook("inbound", "", "received")
    assert await callbacks.apply_once(anonymous, None) is True
    assert await callbacks.apply_once(anonymous, None) is True


async def test_a_failing_webhook_claim_claims_nothing(
    callbacks: CallbackLog, redis_client: redis.Redis
) -> None:
    redis_client.set(keys.SUPPRESSIONS, "not a hash")
    stop = Webhook("inbound", "SM2", "received")
    with pytest.raises(StorageError):
        await callbacks.apply_once(stop, SuppressionChange(PHONE, "add", "inbound", "STOP"))
    assert our_keys(redis_client) == [keys.SUPPRESSIONS]  # Twilio's retry will be applied


async def test_suppression_list_keeps_the_first_record(redis_client: redis.Redis) -> None:
    client = connect(REDIS_URL)
    try:
        suppressions = SuppressionList(client)
        assert await suppressions.add(PHONE, "inbound", "STOP") is True
        assert await suppressions.add(PHONE, "api") is False
        found = await suppressions.get(PHONE)
        assert found is not None and found.how() == "by texting STOP"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("version", "aof", "available"),
    [("7.0.15", "1", False), ("7.2.0", "1", True), ("7.4.1", "0", False), ("8.0.2", "1", True)],
)
def test_waitaof_only_where_the_server_has_it(version: str, aof: str, available: bool) -> None:
    info = {"redis_version": version, "aof_enabled": aof}
    assert waitaof_available(info) is available


async def test_the_ledger_write_on_this_server(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    # Whatever this machine's redis-server is, the attempt is recorded before the send.
    log, _ = store
    [a] = await log.admit([delivery("a", throttle_scope=None)])
    verdict, record = await log.begin_send(a.delivery_id, resolve_after_s=70)
    assert verdict == "send" and record is not None and record.attempt_at_ms is not None
    server = redis_client.info("server")["redis_version"]
    expected = tuple(int(p) for p in server.split(".")[:2]) >= (7, 2)
    assert log._waitaof is (expected and redis_client.info("persistence")["aof_enabled"] == 1)


def guarded(event: str, recipient: str = PHONE, **overrides: object) -> NewDelivery:
    """A live delivery under the velocity guard (block 1, country 2) and a 2-a-day cap."""
    return delivery(
        event,
        recipient=recipient,
        throttle_scope=None,
        throttle_window_ms=0,
        country="US",
        velocity=(VelocityLimit("block", "destination", 1), VelocityLimit("country", "overall", 2)),
        caps=Caps("marketing", (CapRule(texts=2, per=86_400),)),
        **overrides,
    )


async def test_the_guard_counts_only_what_it_admits(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    first, again, neighbour, third = await log.admit(
        [
            guarded("e1"),
            guarded("e2"),  # known now: not first-time, capped at its third text only
            guarded("e3", recipient="+14155552672"),  # a new number of the same block
            guarded("e4"),
        ]
    )
    assert [a.decision for a in (first, again, neighbour, third)] == [
        "queued",
        "queued",
        "blocked_velocity",
        "capped",
    ]
    assert redis_client.hgetall(keys.velocity_known(PHONE[:-3])) == {"671": "1"}
    # (Lua builds the guard's keys from their parts: the same names keys.py gives.)
    hour = id_created_ms(first.delivery_id) // 3_600_000 * 3_600_000  # type: ignore[operator]
    block_count = keys.velocity_count(hour, "block", PHONE[:-3], "welcome")
    assert redis_client.get(block_count) == "1"  # the refused neighbour was not counted
    assert redis_client.get(keys.velocity_count(hour, "country", "US", None)) == "1"
    cap = keys.cap("live", "marketing", PHONE)
    assert redis_client.zrange(cap, 0, -1) == sorted([first.delivery_id, again.delivery_id])
    # A permanent failure lets go of its place under the cap.
    verdict, record = await log.begin_send(first.delivery_id, resolve_after_s=60)
    assert verdict == "send" and record is not None and record.cap_key == cap
    entry = redis_client.xrange(keys.SEND_STREAM)[0][0]
    await log.finish_send(record, entry, "failed", final=True, throttle="release")
    assert redis_client.zrange(cap, 0, -1) == [again.delivery_id]
    assert (await log.admit([guarded("e5")]))[0].decision == "queued"


async def test_a_guard_refusal_frees_the_window_it_claimed(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    redis_client.set(keys.pumping_backoff("number", PHONE), "30453", ex=600)
    windowed = replace(guarded("e1"), throttle_scope="destination", throttle_window_ms=60_000)
    [refused] = await log.admit([windowed])
    assert refused.decision == "blocked_velocity"
    assert refused.detail is not None and refused.detail.startswith("Twilio answered 30453")
    assert not redis_client.exists(keys.throttle("live", "destination", "welcome", PHONE))


async def test_the_guard_failing_half_way_leaves_nothing(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    # The country counter is taken by a key of the wrong type: the guard's count fails
    # after the block counter and the cap were written.
    hour = time.time_ns() // 1_000_000 // 3_600_000 * 3_600_000
    broken = keys.velocity_count(hour, "country", "US", None)
    redis_client.hset(broken, "x", "1")
    with pytest.raises(StorageError, match="undone"):
        await log.admit([guarded("e1")])
    left = set(our_keys(redis_client)) - {broken}
    # What is left is counted against the guard's limits only (the safe side): no record,
    # no mark, no index, no cap entry, nothing queued.
    assert all(":velocity:" in key for key in left), left
    assert not redis_client.exists(keys.cap("live", "marketing", PHONE))


async def test_the_guard_preview_writes_nothing(
    store: tuple[DeliveryLog, SendQueue], redis_client: redis.Redis
) -> None:
    log, _ = store
    await log.admit([guarded("e1"), guarded("e2")])
    before = {k: redis_client.dump(k) for k in our_keys(redis_client)}
    capped = await log.preview(guarded("e3"))
    neighbour = await log.preview(guarded("e4", recipient="+14155552672"))
    assert {k: redis_client.dump(k) for k in our_keys(redis_client)} == before
    assert capped.check.verdict == "capped"
    assert neighbour.check.verdict == "blocked_velocity"
    assert capped.check.detail(0) == (await log.admit([guarded("e3")]))[0].detail
