"""The lean layout (issue 11 item 6) run against Redis: skipped deliveries as entries of
one log, final dedupe marks in buckets, the recipient index in small hashes, no index of
every delivery — every listing, lookup and duplicate answered as before, admission still
all-or-nothing, and a log written by the previous layout still read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis

from app.store import StorageError, keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.records import (
    NewDelivery,
    SendOutcome,
    dedupe_buckets,
    id_created_ms,
    new_delivery_id,
    now_ms,
    pack_uuid,
    skipped_entry_id,
    skipped_id,
)
from app.store.suppressions import suppression_value
from tests.conftest import REDIS_URL

PHONE = "+14155552671"


@pytest.fixture
async def log(redis_client: redis.Redis) -> AsyncIterator[DeliveryLog]:
    client = connect(REDIS_URL)
    yield DeliveryLog(client, dedupe_ttl_s=60, retention_s=3600, skipped_retention_s=600)
    await client.aclose()


def new(event: str, **overrides: object) -> NewDelivery:
    delivery = NewDelivery(
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
    return replace(delivery, **overrides)  # type: ignore[arg-type]


def test_a_skipped_id_names_its_entry_and_sorts_by_time() -> None:
    delivery_id = skipped_id("1764621234567-12")
    assert len(delivery_id) == 31 and id_created_ms(delivery_id) == 1764621234567
    assert skipped_entry_id(delivery_id) == "1764621234567-12"
    # A record's id (made now) never names an entry; ids of one ms sort records first.
    record_id = new_delivery_id(1764621234567)
    assert skipped_entry_id(record_id) is None and record_id < delivery_id
    assert skipped_id("1764621234567-13") > delivery_id > skipped_id("1764621234566-99")


async def test_a_listing_below_the_first_possible_id_is_empty(log: DeliveryLog) -> None:
    await log.admit([new("a", skip_reason="invalid_recipient", recipient=None), new("b")])
    for cursor in ("dl_" + "0" * 28, skipped_id("0-0"), new_delivery_id(1)):
        assert (await log.query(cursor=cursor)).items == []
    assert (await log.query(until_ms=-1)).items == []
    assert len((await log.query(since_ms=-(10**15))).items) == 2


async def test_skipped_deliveries_are_entries_read_and_listed_like_records(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    admitted = await log.admit(
        [
            new("a"),  # queued: holds the window
            new("b"),  # throttled
            new("c", skip_reason="render_error", detail="no such\nvariable"),
            new("d", destination_id="other", recipient="+14155550002"),
            new("e", throttle_scope=None),  # queued
        ]
    )
    decisions = [a.decision for a in admitted]
    assert decisions == ["queued", "throttled", "render_error", "queued", "queued"]
    a, b, c, d, e = (x.delivery_id for x in admitted)
    assert redis_client.xlen(keys.SKIPPED_LOG) == 2
    assert not redis_client.exists(keys.delivery(b), keys.delivery(c))
    throttled = await log.get(b)
    assert throttled is not None
    assert (throttled.status, throttled.reason, throttled.recipient) == (
        "skipped",
        "throttled",
        PHONE,
    )
    assert throttled.throttle_key is None  # it claimed no window
    public = throttled.to_public()
    assert public["history"] == [
        {"status": "skipped", "at": public["created_at"], "reason": "throttled"}
    ]
    rendered = await log.get(c)
    assert rendered is not None and rendered.detail == "no such\nvariable"
    # Every listing merges the indexes and the skipped log, newest first, paged by cursor.
    every = [a, b, c, d, e]
    assert [r.id for r in (await log.query(limit=50)).items] == sorted(every, reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        page = await log.query(limit=2, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(every, reverse=True)
    by = log.query
    assert {r.id for r in (await by(status="skipped")).items} == {b, c}
    assert {r.id for r in (await by(destination="welcome")).items} == {a, b, c, e}
    assert {r.id for r in (await by(recipient=PHONE)).items} == {a, b, c, e}
    assert {r.id for r in (await by(recipient=PHONE, status="skipped")).items} == {b, c}
    assert {r.id for r in (await by(status="queued")).items} == {a, d, e}
    created = id_created_ms(b) or 0
    assert {r.id for r in (await by(since_ms=created + 60_000)).items} == set()
    assert len((await by(until_ms=created + 60_000)).items) == 5


async def test_a_skipped_delivery_is_deduped_and_its_mark_is_a_bucket_field(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    [held] = await log.admit([new("a")])
    [throttled] = await log.admit([new("b")])
    [again] = await log.admit([new("b")])
    assert (again.decision, again.delivery_id) == ("duplicate", throttled.delivery_id)
    assert throttled.delivery_id in (again.detail or "")
    # No key of its own: a field of this generation's bucket, expiring whole.
    assert not redis_client.exists(keys.dedupe("welcome", "b"))
    [bucket, *_], expires_ms = dedupe_buckets("welcome", "b", now_ms(), 60_000)
    assert redis_client.hget(bucket, "b") == skipped_entry_id(throttled.delivery_id)
    assert 0 < redis_client.pttl(bucket) <= expires_ms - now_ms() + 1000
    preview = await log.preview(new("b"))
    assert preview.duplicate_of == throttled.delivery_id
    assert preview.check.verdict == "throttled" and preview.check.held_by == held.delivery_id


async def test_a_final_delivery_s_mark_moves_to_its_bucket_and_still_dedupes(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    [sent, opted] = await log.admit([new("a", throttle_scope=None), new("b", throttle_scope=None)])
    assert redis_client.get(keys.dedupe("welcome", "a")) == sent.delivery_id  # pending: a key
    _, record = await log.begin_send(sent.delivery_id, resolve_after_s=70)
    assert record is not None
    await log.finish_send(record, "0-1", "sent", final=True, outcome=SendOutcome("SM1", "sent"))
    redis_client.hset(keys.SUPPRESSIONS, PHONE, suppression_value("api").decode())
    assert await log.begin_send(opted.delivery_id, resolve_after_s=70) == ("opted_out", None)
    for event, delivery in (("a", sent), ("b", opted)):
        assert not redis_client.exists(keys.dedupe("welcome", event))
        [bucket, *_], _ = dedupe_buckets("welcome", event, now_ms(), 60_000)
        assert redis_client.hget(bucket, event) == delivery.delivery_id
        [again] = await log.admit([new(event)])
        assert (again.decision, again.delivery_id) == ("duplicate", delivery.delivery_id)


@pytest.mark.parametrize("write", ["skipped log", "dedupe bucket"])
async def test_a_skipped_admission_failing_half_way_leaves_nothing(
    write: str, log: DeliveryLog, redis_client: redis.Redis
) -> None:
    [held] = await log.admit([new("a")])
    [bucket, *_], _ = dedupe_buckets("welcome", "b", now_ms(), 60_000)
    broken = keys.SKIPPED_LOG if write == "skipped log" else bucket
    redis_client.set(broken, "not what admission expects")
    with pytest.raises(StorageError, match="undone"):
        await log.admit([new("b")])
    if write == "dedupe bucket":
        assert redis_client.xlen(keys.SKIPPED_LOG) == 0  # its entry was taken back
    assert redis_client.get(keys.throttle("live", "destination", "welcome", PHONE)) == (
        held.delivery_id
    )
    redis_client.delete(broken)
    [retried] = await log.admit([new("b")])
    assert retried.decision == "throttled"  # not a "duplicate" of nothing
    assert redis_client.xlen(keys.SKIPPED_LOG) == 1


async def test_the_skipped_log_is_trimmed_by_age_as_entries_are_added(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    for n in range(300):  # older than the skipped retention (600 s): whole nodes of them
        redis_client.xadd(keys.SKIPPED_LOG, {"reason": "throttled"}, id=f"1000-{n}")
    await log.admit([new("a", skip_reason="invalid_recipient", recipient=None)])
    assert redis_client.xlen(keys.SKIPPED_LOG) < 100  # trimmed a node at a time
    assert redis_client.xrevrange(keys.SKIPPED_LOG, count=1)[0][1]["reason"] == (
        "invalid_recipient"
    )


async def test_a_log_written_by_the_previous_layout_reads_the_same(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    # A skipped record of before: a hash with the long field names, in the index of every
    # delivery and in a sorted set for its recipient.
    old = new_delivery_id()
    redis_client.hset(
        keys.delivery(old),
        mapping={
            "status": "skipped",
            "reason": "throttled",
            "history": "0|skipped|throttled",
            "destination": "welcome",
            "mode": "live",
            "event_name": "signed up",
            "event_uuid": "old-event",
            "recipient": PHONE,
            "body": "Hi",
            "encoding": "GSM-7",
            "segments": "1",
        },
    )
    redis_client.set(keys.dedupe("welcome", "old-event"), old, px=60_000)
    for index in (
        keys.DELIVERY_INDEX,
        keys.DESTINATION_INDEX_PREFIX + "welcome",
        keys.RECIPIENT_INDEX_PREFIX + PHONE,
    ):
        redis_client.zadd(index, {old: 0})
    await log.migrate()
    assert not redis_client.exists(keys.DELIVERY_INDEX)
    [newer] = await log.admit([new("a")])
    record = await log.get(old)
    assert record is not None
    assert (record.destination, record.event_name, record.encoding, record.segments) == (
        "welcome",
        "signed up",
        "GSM-7",
        1,
    )
    for query in ({}, {"recipient": PHONE}, {"destination": "welcome"}, {"status": "skipped"}):
        ids = [r.id for r in (await log.query(**query)).items]  # type: ignore[arg-type]
        assert old in ids, query
    assert [r.id for r in (await log.query(recipient=PHONE)).items] == [newer.delivery_id, old]
    [again] = await log.admit([new("old-event")])
    assert (again.decision, again.delivery_id) == ("duplicate", old)


async def test_a_sent_record_keeps_only_what_cannot_be_derived(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    uuid = "0190e4c6-0000-7000-8000-0000000000ab"
    [sent, other] = await log.admit([new(uuid), new("Not-A-UUID", recipient="+14155550009")])
    _, record = await log.begin_send(sent.delivery_id, resolve_after_s=70)
    assert record is not None
    await log.finish_send(
        record, "0-1", "sent", final=True, throttle="anchor", outcome=SendOutcome("SM1", "sent")
    )
    stored = redis_client.hgetall(keys.delivery(sent.delivery_id))
    # A canonical uuid in 22 characters, GSM-7 implied, the window and attempts gone once
    # the text went out (the window is its key's expiry, the attempts its history's).
    assert stored["u"] == pack_uuid(uuid) and len(stored["u"]) == 22
    assert {"uuid", "enc", "attempts", "throttle", "win", "attempt_at"}.isdisjoint(stored)
    assert redis_client.pttl(keys.throttle("live", "destination", "welcome", PHONE)) > 3_000_000
    read = await log.get(sent.delivery_id)
    assert read is not None
    assert (read.event_uuid, read.encoding, read.attempts) == (uuid, "GSM-7", 1)
    assert read.event_identity == uuid and read.dedupe_key == keys.dedupe("welcome", uuid)
    raw = redis_client.hgetall(keys.delivery(other.delivery_id))
    assert raw["uuid"] == "Not-A-UUID" and "u" not in raw
