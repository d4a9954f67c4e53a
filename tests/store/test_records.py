"""The typed delivery record: what admission writes reads back field for field, and the
one Twilio-status mapping drives every status report."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from app.store import keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.records import (
    PROVIDER_STATUSES,
    UNINDEXED_STATUSES,
    NewDelivery,
    SendOutcome,
    delivery_status_for,
    id_created_ms,
    new_delivery_id,
    provider_status_rank,
)
from tests.conftest import REDIS_URL


@pytest.fixture
async def log(redis_client: redis.Redis) -> AsyncIterator[DeliveryLog]:
    client = connect(REDIS_URL)
    yield DeliveryLog(client, dedupe_ttl_s=60, retention_s=3600)
    await client.aclose()


def new(**overrides: object) -> NewDelivery:
    values: dict[str, object] = {
        "destination_id": "welcome",
        "mode": "live",
        "event_identity": "event-1",
        "event_uuid": "event-1",
        "event_name": "signed up",
        "recipient": "+14155552671",
        "body": "Hi ✓",
        "encoding": "UCS-2",
        "segments": 1,
        "messaging_service_sid": "MG" + "0" * 32,
        "media_urls": ("https://example.com/a.png",),
        "status_callback": "https://example.com/cb",
        "validity_period": 600,
        "send_at": "2030-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return NewDelivery(**values)  # type: ignore[arg-type]


async def test_a_record_reads_back_as_admitted(log: DeliveryLog) -> None:
    [admission] = await log.admit([new()])
    assert admission.decision == "queued"
    record = await log.get(admission.delivery_id)
    assert record is not None
    assert (record.destination, record.mode, record.status) == ("welcome", "live", "queued")
    assert (record.recipient, record.body, record.encoding, record.segments) == (
        "+14155552671",
        "Hi ✓",
        "UCS-2",
        1,
    )
    assert record.from_number is None
    assert record.messaging_service_sid == "MG" + "0" * 32
    assert record.media_urls == ("https://example.com/a.png",)
    assert (record.status_callback, record.validity_period) == ("https://example.com/cb", 600)
    assert record.send_at == "2030-01-01T00:00:00+00:00"
    assert record.attempts == 0 and record.provider_id is None and record.error_code is None
    public = record.to_public()
    assert public["from"] is None and public["event"] == {"uuid": "event-1", "name": "signed up"}
    assert [h["status"] for h in public["history"]] == ["queued"]


async def test_twilio_reports_move_a_record_forward_only(log: DeliveryLog) -> None:
    [admission] = await log.admit([new(event_identity="event-2")])
    delivery_id = admission.delivery_id
    verdict, record = await log.begin_send(delivery_id, resolve_after_s=70)
    assert verdict == "send" and record is not None and record.attempts == 1
    # A send without a stream entry to acknowledge: XACK of an unknown entry is harmless.
    await log.finish_send(
        record,
        "0-1",
        "sent",
        final=True,
        outcome=SendOutcome(provider_id="SM1", provider_status="queued"),
    )
    assert await log.apply_provider_status(delivery_id, "delivered", None, "cb") == "applied"
    assert await log.apply_provider_status(delivery_id, "sent", None, "late") == "stale"
    assert await log.apply_provider_status("dl_missing", "sent", None, "x") == "missing"
    record = await log.get(delivery_id)
    assert record is not None
    assert (record.status, record.provider_status, record.provider_id) == (
        "delivered",
        "delivered",
        "SM1",
    )


def test_one_mapping_from_twilio_statuses() -> None:
    assert delivery_status_for("queued") is None  # still "sent" for us
    assert delivery_status_for("sent") == "sent"
    assert delivery_status_for("unknown-status") is None
    assert (
        provider_status_rank("read")
        > provider_status_rank("delivered")
        > provider_status_rank("sent")
    )
    assert provider_status_rank("mocked") == 0
    finals = {s for s, (rank, _) in PROVIDER_STATUSES.items() if rank == 4}
    assert finals == {"delivered", "undelivered", "failed", "canceled"}


def test_delivery_ids_carry_their_creation_time() -> None:
    assert id_created_ms(new_delivery_id(1_700_000_000_123)) == 1_700_000_000_123
    assert id_created_ms("not-an-id") is None


async def test_a_listing_by_an_unindexed_status_reads_the_log(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    assert "skipped" in UNINDEXED_STATUSES
    [skipped, queued] = await log.admit(
        [new(skip_reason="invalid_recipient", detail="to: no\nnumber"), new(event_identity="e2")]
    )
    assert not redis_client.exists(keys.STATUS_INDEX_PREFIX + "skipped")
    page = await log.query(status="skipped")
    assert [r.id for r in page.items] == [skipped.delivery_id]
    assert [r.id for r in (await log.query(status="queued")).items] == [queued.delivery_id]


async def test_a_record_written_before_the_lean_format_reads_the_same(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    delivery_id = new_delivery_id()
    legacy_history = '[{"status":"queued","at":"2026-11-30T10:00:00.000Z"}]'
    redis_client.hset(
        keys.delivery(delivery_id),
        mapping={
            "id": delivery_id,
            "status": "queued",
            "destination": "welcome",
            "mode": "live",
            "event_name": "signed up",
            "recipient": "+14155552671",
            "throttle_key": keys.throttle("live", "global", "welcome", "+14155552671"),
            "history": legacy_history,
            "created_at": "2026-11-30T10:00:00.000Z",
            "updated_at": "2026-11-30T10:00:00.000Z",
            "twilio_request": '{"method": "POST"}',
        },
    )
    verdict, record = await log.begin_send(delivery_id, resolve_after_s=70)
    assert verdict == "send" and record is not None
    assert record.throttle_key == keys.throttle("live", "global", "welcome", "+14155552671")
    public = record.to_public()
    assert [h["status"] for h in public["history"]] == ["queued", "sending"]
    assert public["created_at"] == "2026-11-30T10:00:00.000Z"
    assert public["updated_at"] == public["history"][-1]["at"]
    assert public["twilio_request"] == {"method": "POST"}


async def test_a_history_detail_keeps_its_bars_and_loses_its_newlines(log: DeliveryLog) -> None:
    [admission] = await log.admit([new(event_identity="event-3")])
    _, record = await log.begin_send(admission.delivery_id, resolve_after_s=70)
    assert record is not None
    await log.finish_send(record, "0-1", "failed", final=True, detail="Twilio said: a|b\nc")
    record = await log.get(admission.delivery_id)
    assert record is not None
    history = record.to_public()["history"]
    assert [h["status"] for h in history] == ["queued", "sending", "failed"]
    assert history[-1]["detail"] == "Twilio said: a|b c"
