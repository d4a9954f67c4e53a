"""Reconciliation with Twilio: stale deliveries move forward, external messages appear."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import redis
from pydantic import SecretStr
from redis.asyncio import Redis

from app.services.reconcile import Reconciler
from app.store import keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.reconcile_state import ReconcileState
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.provider import TwilioProvider
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    REDIS_URL,
    SIGNUP_DESTINATION,
    RunningService,
    posthog_webhook,
    twilio_http,
)
from tests.fake_twilio import FakeTwilio


@pytest.fixture
async def async_redis(redis_client: redis.Redis) -> AsyncIterator[Redis]:
    client = connect(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def make_reconciler(
    async_redis: Redis, fake_twilio: FakeTwilio
) -> AsyncIterator[Callable[..., Reconciler]]:
    http = twilio_http()
    credentials = TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)
    twilio = TwilioClient(http, credentials, fake_twilio.base_url)
    deliveries = DeliveryLog(async_redis, dedupe_ttl_s=3600, retention_s=86_400)

    def make(stale_after_s: int = 0, max_pages: int = 5, page_size: int = 100) -> Reconciler:
        state = ReconcileState(async_redis)
        provider = TwilioProvider(twilio)
        return Reconciler(state, deliveries, provider, stale_after_s, max_pages, page_size)

    yield make
    await http.aclose()


async def run(reconciler: Reconciler, redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    redis_client.delete(keys.RECONCILE_LOCK)  # as if the interval had passed
    return await reconciler.run_once(lock_s=60)


async def test_stale_delivery_moves_forward(
    start_service: Callable[..., RunningService],
    fake_twilio: FakeTwilio,
    make_reconciler: Callable[..., Reconciler],
    redis_client: redis.Redis,
) -> None:
    service = start_service(SIGNUP_DESTINATION)
    answer = service.post_events(posthog_webhook()).json()
    record = service.wait_for_status(answer["results"][0]["deliveries"][0]["delivery_id"], "sent")
    fake_twilio.messages[record["twilio_sid"]].update(status="undelivered", error_code=30003)

    # Not yet stale (accepted less than an hour ago): left alone.
    report = await run(make_reconciler(stale_after_s=3600), redis_client)
    assert report is not None and report.checked == 0

    report = await run(make_reconciler(stale_after_s=0), redis_client)
    assert report is not None and (report.checked, report.updated) == (1, 1)
    updated = service.delivery(record["id"])
    assert (updated["status"], updated["error_code"]) == ("undelivered", 30003)
    assert updated["history"][-1]["detail"] == "reconciled with Twilio: undelivered"

    # A later poll seeing an older state changes nothing.
    fake_twilio.messages[record["twilio_sid"]]["status"] = "sent"
    report = await run(make_reconciler(stale_after_s=0), redis_client)
    assert report is not None and report.updated == 0


async def test_lock_lets_one_process_run_per_interval(
    make_reconciler: Callable[..., Reconciler],
) -> None:
    reconciler = make_reconciler()
    assert await reconciler.run_once(lock_s=60) is not None
    assert await make_reconciler().run_once(lock_s=60) is None


async def test_external_messages_are_imported_once_across_pages(
    start_service: Callable[..., RunningService],
    fake_twilio: FakeTwilio,
    make_reconciler: Callable[..., Reconciler],
    redis_client: redis.Redis,
) -> None:
    reconciler = make_reconciler(max_pages=1, page_size=2)
    first = await run(reconciler, redis_client)  # sets the cursor: history is not imported
    assert first is not None and first.imported == 0
    now = datetime.now(UTC)
    for i in range(5):
        fake_twilio.add_message(
            to=f"+1415555267{i}",
            body=f"other system {i}",
            date_sent=now,
            direction="outbound-api",
            status="delivered",
        )
    fake_twilio.add_message(
        to="+14155552679",
        body="an inbound one",
        date_sent=now,
        direction="inbound",
        status="received",
    )

    reports = []
    for _ in range(4):
        report = await run(reconciler, redis_client)
        assert report is not None
        reports.append(report)
    # One page (2 of the 6 messages, newest first) per run: the sweep ends on the 3rd run
    # with every outbound one imported; the next sweep finds nothing new.
    assert [r.sweep_done for r in reports[:3]] == [False, False, True]
    assert sum(r.imported for r in reports[:3]) == 5 and reports[3].imported == 0

    service = start_service(SIGNUP_DESTINATION, run_worker=False)
    with service.admin() as admin:
        page = admin.get("/v1/deliveries", params={"destination": "$external"}).json()
    assert sorted(i["body"] for i in page["items"]) == [f"other system {i}" for i in range(5)]
    assert {i["status"] for i in page["items"]} == {"external"}
    assert {i["twilio_status"] for i in page["items"]} == {"delivered"}
