"""Sending: retries, permanent failures, throttle release, crash recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis

from app.store import keys
from tests.conftest import THROTTLED_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio, ScriptedResponse

Start = Callable[..., RunningService]


def queue_one(service: RunningService, uuid: str = "evt-1") -> str:
    answer = service.post_events(posthog_webhook(uuid=uuid)).json()
    delivery = answer["results"][0]["deliveries"][0]
    assert delivery["decision"] == "queued", delivery
    delivery_id: str = delivery["delivery_id"]
    return delivery_id


def test_500_twice_then_201_sends_once(start_service: Start, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(500), ScriptedResponse(503))
    service = start_service(THROTTLED_DESTINATION)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "sent")
    assert len(fake_twilio.message_requests) == 3
    assert record["attempts"] == 3
    statuses = [h["status"] for h in record["history"]]
    assert statuses.count("retrying") == 2 and statuses[-1] == "sent"


def test_429_is_retried_honouring_retry_after(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.enqueue(
        ScriptedResponse(
            429,
            {"code": 20429, "message": "Too Many Requests", "status": 429},
            headers={"Retry-After": "1"},
        )
    )
    service = start_service(THROTTLED_DESTINATION, retry_max_delay=5)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "sent")
    first, second = fake_twilio.message_requests
    assert second.received_at - first.received_at >= 0.9  # Retry-After: 1 was honoured
    assert "retry in 1.00 s" in record["history"][2]["detail"]


def test_a_retry_after_beyond_the_max_delay_is_capped(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # An hour, from Twilio; SMS_RETRY_MAX_DELAY is half a second here.
    fake_twilio.enqueue(
        ScriptedResponse(
            503,
            {"code": 20503, "message": "Service unavailable", "status": 503},
            headers={"Retry-After": "3600"},
        )
    )
    service = start_service(THROTTLED_DESTINATION, retry_max_delay=0.5)
    record = service.wait_for_status(queue_one(service), "sent", timeout=5)
    first, second = fake_twilio.message_requests
    assert 0.45 <= second.received_at - first.received_at < 2
    assert "retry in 0.50 s" in record["history"][2]["detail"]


def test_permanent_error_fails_at_once_and_releases_throttle(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # 21608 fails this message only (21211, an invalid number, also suppresses it).
    fake_twilio.enqueue(fake_twilio.fail_with(400, 21608, "The number is unverified."))
    service = start_service(THROTTLED_DESTINATION)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "failed")
    assert len(fake_twilio.message_requests) == 1
    assert record["error_code"] == 21608
    assert record["error_message"] == "The number is unverified."
    assert record["attempts"] == 1
    # The window is free again: the next event for the recipient goes out.
    assert redis_client.keys(keys.PREFIX + "throttle:*") == []
    next_id = queue_one(service, uuid="evt-2")
    service.wait_for_status(next_id, "sent")


def test_retries_exhausted_is_failed_with_twilio_error(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    error = {"code": 20500, "message": "Internal Server Error", "status": 500}
    fake_twilio.enqueue(*[ScriptedResponse(500, error)] * 3)
    service = start_service(THROTTLED_DESTINATION, send_max_attempts=3)
    record = service.wait_for_status(queue_one(service), "failed")
    assert len(fake_twilio.message_requests) == 3
    assert (record["error_code"], record["error_message"]) == (20500, "Internal Server Error")


def test_a_timeout_after_sending_is_resolved_with_twilio_not_resent(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # Twilio creates the message, but answers after the 0.5 s deadline: outcome unknown.
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, delay=1.0))
    service = start_service(THROTTLED_DESTINATION, twilio_timeout=0.5, twilio_list_delay=1)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "unknown")
    assert "ReadTimeout" in record["error_message"]
    # Asked 1 s later (SMS_TWILIO_LIST_DELAY), Twilio's list has it: adopted, not resent.
    record = service.wait_for_status(delivery_id, "sent", timeout=10)
    assert len(fake_twilio.message_requests) == 1
    [created] = fake_twilio.messages
    assert record["twilio_sid"] == created and record["attempts"] == 1
    assert "adopted, not sent again" in record["history"][-1]["detail"]


def test_connection_refused_is_retried(start_service: Start, fake_twilio: FakeTwilio) -> None:
    # Nothing listens on the port: the request never left, so retrying is safe.
    service = start_service(
        THROTTLED_DESTINATION, twilio_base_url="http://127.0.0.1:9", send_max_attempts=2
    )
    record = service.wait_for_status(queue_one(service), "failed")
    assert record["attempts"] == 2
    assert "ConnectError" in record["error_message"]


def test_killed_worker_message_is_reclaimed(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # API without a worker: the delivery waits in the stream.
    service = start_service(THROTTLED_DESTINATION, run_worker=False)
    delivery_id = queue_one(service)
    # A worker reads it and dies before acknowledging (nothing sent, nothing recorded).
    redis_client.xgroup_create(keys.SEND_STREAM, keys.SEND_GROUP, id="0", mkstream=True)
    taken = redis_client.xreadgroup(keys.SEND_GROUP, "dead-worker", {keys.SEND_STREAM: ">"})
    assert taken and taken[0][1][0][1]["delivery"] == delivery_id
    # A live worker reclaims it once it has been idle for SMS_RECLAIM_IDLE: 3 s here, the
    # least a 1 s Twilio deadline allows.
    other = start_service(THROTTLED_DESTINATION, twilio_timeout=1, reclaim_idle=3)
    other.wait_for_status(delivery_id, "sent", timeout=10)
    assert len(fake_twilio.message_requests) == 1
    assert redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)["pending"] == 0


def test_message_with_twilio_sid_is_not_sent_again(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(THROTTLED_DESTINATION)
    delivery_id = queue_one(service)
    service.wait_for_status(delivery_id, "sent")
    # Replay the stream entry, as if the worker had died between Twilio's 201 and the ack.
    redis_client.xadd(keys.SEND_STREAM, {"delivery": delivery_id})
    asyncio.run(asyncio.sleep(1.0))
    assert len(fake_twilio.message_requests) == 1
    assert redis_client.xlen(keys.SEND_STREAM) == 0


async def test_prune_indexes_drops_entries_past_retention_and_migrates(
    redis_client: redis.Redis,
) -> None:
    from app.store.connection import connect
    from app.store.deliveries import DeliveryLog
    from tests.conftest import REDIS_URL

    old, new = "dl_000000000001" + "0" * 16, "dl_ffffffffffff" + "0" * 16
    for index in (keys.DELIVERY_INDEX, keys.DESTINATION_INDEX_PREFIX + "x"):
        redis_client.zadd(index, {old: 0, new: 0})
    client = connect(REDIS_URL)
    try:
        removed = await DeliveryLog(client, dedupe_ttl_s=60, retention_s=3600).prune_indexes()
    finally:
        await client.aclose()
    # The index of every delivery an earlier version kept is gone (a listing of all
    # merges the destinations' indexes), its destinations known.
    assert removed == 1
    assert not redis_client.exists(keys.DELIVERY_INDEX)
    assert redis_client.smembers(keys.LOGGED_DESTINATIONS) == {"x"}
    assert redis_client.zrange(keys.DESTINATION_INDEX_PREFIX + "x", 0, -1) == [new]


def test_worker_recovers_when_the_stream_disappears(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(THROTTLED_DESTINATION)
    service.wait_for_status(queue_one(service), "sent")
    redis_client.flushdb()  # the stream and its consumer group are gone
    record = service.wait_for_status(queue_one(service, uuid="after-flush"), "sent", timeout=10)
    assert record["attempts"] == 1
    assert len(fake_twilio.message_requests) == 2


def test_a_sender_queue_overflow_is_retried_not_failed(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # 21611 comes as a 400, but the catalog says retry (and slow down): nothing was created.
    fake_twilio.enqueue(fake_twilio.fail_with(400, 21611, "This 'From' number has exceeded …"))
    service = start_service(THROTTLED_DESTINATION)
    record = service.wait_for_status(queue_one(service), "sent")
    assert len(fake_twilio.message_requests) == 2
    assert [h["status"] for h in record["history"]].count("retrying") == 1
