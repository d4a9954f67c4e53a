"""Admission is all-or-nothing, seen from the sender (issue 12, item 5): an admission script
failing at any of its writes answers 503 with Retry-After and leaves nothing behind, so the
sender's retry is admitted — not answered `duplicate` for a delivery that never existed —
and the text goes out once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from app.store import keys
from app.store.recipient_index import shard_of
from app.store.records import now_ms
from tests.conftest import THROTTLED_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
PHONE = "+14155552671"
UUID = "0190e4c6-0000-7000-8000-0000000000aa"

# Each key admission writes (but the record, whose name is the new delivery's id), in the
# order it writes them; a value of the wrong type there makes that write fail.
WRITES = {
    "dedupe mark": keys.dedupe("welcome", UUID),
    "throttle window": keys.throttle("live", "destination", "welcome", PHONE),
    "logged destinations": keys.LOGGED_DESTINATIONS,
    "destination index": keys.DESTINATION_INDEX_PREFIX + "welcome",
    # (the quarter of the retention the test runs in; 30 days by default)
    "recipient index": shard_of(PHONE, now_ms(), 30 * 86_400_000)[0],
    "status index": keys.STATUS_INDEX_PREFIX + "queued",
    "send stream": keys.SEND_STREAM,
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_failing_admission_is_503_and_the_retry_is_admitted_and_sent_once(
    write: str, start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(THROTTLED_DESTINATION)
    broken = WRITES[write]
    redis_client.delete(broken)
    if write == "recipient index":  # a hash: a string is of the wrong type
        redis_client.set(broken, "not what admission expects")
    else:
        redis_client.hset(broken, "not", "what admission expects")
    refused = service.post_events(posthog_webhook(uuid=UUID, phone=PHONE))
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "unavailable"
    # Nothing of the delivery is left: no record, mark, window, index entry or queue entry.
    assert redis_client.keys(keys.PREFIX + "delivery:*") == []
    marks = redis_client.keys(keys.PREFIX + "dedupe:*") + redis_client.keys(
        keys.PREFIX + "throttle:*"
    )
    assert set(marks) <= {broken}
    for key in WRITES.values():
        if key != broken and redis_client.type(key) == "zset":
            assert redis_client.zcard(key) == 0, key
        if key != broken:  # a hash (the recipient index) or a set it is no delivery's
            assert redis_client.type(key) in ("none", "zset", "stream"), key
    if broken != keys.SEND_STREAM:
        assert redis_client.xlen(keys.SEND_STREAM) == 0
    redis_client.delete(broken)
    retried = service.post_events(posthog_webhook(uuid=UUID, phone=PHONE))
    assert retried.status_code == 202
    [delivery] = retried.json()["results"][0]["deliveries"]
    assert delivery["decision"] == "queued", delivery
    service.wait_for_status(delivery["delivery_id"], "sent", timeout=10)
    assert len(fake_twilio.message_requests) == 1
