"""Windows measured on the recipient's phone, and nothing pending ever expires (issue 12,
items 3 and 4): the throttle window runs from the text actually sent; a delivery's record,
dedupe mark and window live as long as its work, and retention counts from a final status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis
from pydantic import SecretStr

from app.metrics import Metrics
from app.pipeline.dispatch import RetryPolicy
from app.services.worker import SendWorker
from app.store import keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.pauses import PauseBook
from app.store.queue import SendQueue
from app.store.records import NewDelivery, dedupe_buckets, now_ms
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.provider import TwilioProvider
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    REDIS_URL,
    RunningService,
    posthog_webhook,
    twilio_http,
)
from tests.fake_twilio import FakeTwilio, ScriptedResponse

Start = Callable[..., RunningService]

WINDOW_3S = """
destinations:
  - id: welcome
    body: "Hi"
    from: "+15005550006"
    throttle: {window: 3s}
"""


def unavailable(retry_after: int) -> ScriptedResponse:
    return ScriptedResponse(
        503,
        {"code": 20503, "message": "Service unavailable", "status": 503},
        headers={"Retry-After": str(retry_after)},
    )


def decision(service: RunningService, uuid: str) -> str:
    answer = service.post_events(posthog_webhook(uuid=uuid)).json()
    result: str = answer["results"][0]["deliveries"][0]["decision"]
    return result


def test_the_window_runs_from_the_text_not_from_admission(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # The first text goes out 2 s after its admission (a Retry-After); the window is 3 s.
    fake_twilio.enqueue(unavailable(2))
    service = start_service(WINDOW_3S, retry_max_delay=5)
    admitted = time.monotonic()
    assert decision(service, "first") == "queued"
    fake_twilio.wait_for_requests(2, timeout=10)
    # 3.5 s after admission, 1.5 s after the text: still inside the window.
    time.sleep(max(0.0, admitted + 3.5 - time.monotonic()))
    assert decision(service, "too-soon") == "throttled"
    # A full window after the text: free.
    time.sleep(max(0.0, fake_twilio.message_requests[1].received_at + 3.2 - time.monotonic()))
    assert decision(service, "later") == "queued"
    requests = fake_twilio.wait_for_requests(3, timeout=10)
    assert requests[2].received_at - requests[1].received_at >= 3.0
    # A request is recorded as it arrives, its message created just after: allow a moment.
    deadline = time.monotonic() + 5
    while len(fake_twilio.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake_twilio.messages) == 2


@pytest.fixture
async def short_lived_log(redis_client: redis.Redis) -> AsyncIterator[DeliveryLog]:
    """A delivery log keeping records and dedupe marks for 1 s once final."""
    client = connect(REDIS_URL)
    yield DeliveryLog(client, dedupe_ttl_s=1, retention_s=1)
    await client.aclose()


def new_delivery() -> NewDelivery:
    return NewDelivery(
        destination_id="welcome",
        mode="live",
        event_identity="event-1",
        event_uuid="event-1",
        event_name="signed up",
        recipient="+14155552671",
        body="Hi",
        encoding="GSM-7",
        segments=1,
        from_number="+15005550006",
        throttle_scope="destination",
        throttle_window_ms=60_000,
    )


async def test_a_retry_after_longer_than_the_retention_is_still_sent_once_later(
    short_lived_log: DeliveryLog, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # Retention and dedupe time are 1 s; Twilio asks to come back in 3 s.
    fake_twilio.enqueue(unavailable(3))
    client = connect(REDIS_URL)
    http = twilio_http(timeout=httpx.Timeout(5.0))
    twilio = TwilioClient(
        http,
        TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None),
        fake_twilio.base_url,
    )
    worker = SendWorker(
        SendQueue(client, "lifetimes"),
        short_lived_log,
        TwilioProvider(twilio, send_timeout_s=5, list_delay_s=1),
        RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=10),
        concurrency=4,
        reclaim_idle_s=60,
        metrics=Metrics(),
        pauses=PauseBook(client),
    )
    running = asyncio.create_task(worker.run())
    try:
        [admission] = await short_lived_log.admit([new_delivery()])
        record_key = keys.delivery(admission.delivery_id)
        await asyncio.to_thread(fake_twilio.wait_for_requests, 1)
        await asyncio.sleep(0.2)
        record = await short_lived_log.get(admission.delivery_id)
        assert record is not None and record.status == "retrying"
        # Pending: nothing of it expires, whatever the retention says.
        held = [record_key, record.dedupe_key or "", record.throttle_key or ""]
        assert [redis_client.pttl(key) for key in held] == [-1, -1, -1]
        await asyncio.sleep(2.0)  # past the retention, still waiting
        assert all(redis_client.exists(key) for key in held)
        first, second = await asyncio.to_thread(fake_twilio.wait_for_requests, 2)
        assert second.received_at - first.received_at >= 2.9
        for _ in range(500):
            record = await short_lived_log.get(admission.delivery_id)
            if record is None or record.status == "sent":
                break
            await asyncio.sleep(0.01)
        assert record is not None and record.status == "sent"
        assert len(fake_twilio.messages) == 1
        # Final: retention (1 s) and the window (60 s) count from now.
        assert 0 < redis_client.pttl(record_key) <= 1000
        # The mark moved from its key to a bucket of final marks, kept 1 to 1.5 s from now.
        assert not redis_client.exists(record.dedupe_key or "")
        [bucket, *_], _ = dedupe_buckets("welcome", "event-1", now_ms(), 1000)
        assert redis_client.hget(bucket, "event-1") == admission.delivery_id
        assert 0 < redis_client.pttl(bucket) <= 1500
        # (a sent record no longer names its window: the key it held while pending)
        assert record.throttle_key is None and record.attempts == 2
        assert 58_000 < redis_client.pttl(held[2]) <= 60_000
    finally:
        worker.stop()
        await running
        await http.aclose()
        await client.aclose()
