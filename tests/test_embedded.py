"""The zero-setup default: no SMS_REDIS_URL → an embedded Redis under the data dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

DESTINATION = """
destinations:
  - {id: hello, body: "hello", from: "+15005550006"}
"""


def test_embedded_redis_test_mode_and_persistence(
    start_service: Start, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    no_credentials = {"TWILIO_ACCOUNT_SID": None, "TWILIO_AUTH_TOKEN": None}
    data_dir = tmp_path / "data"
    service = start_service(DESTINATION, redis_url=None, data_dir=data_dir, **no_credentials)
    answer = service.post_events(posthog_webhook()).json()
    delivery_id = answer["results"][0]["deliveries"][0]["delivery_id"]
    record = service.wait_for_status(delivery_id, "mocked")  # no credentials → test mode
    assert record["twilio_request"]["form"]["Body"] == "hello"
    service.stop()
    assert (data_dir / "appendonly.aof").exists()

    # Restarted on the same data dir, the log and the dedupe memory are still there.
    again = start_service(DESTINATION, redis_url=None, data_dir=data_dir, **no_credentials)
    assert again.delivery(delivery_id)["status"] == "mocked"
    duplicate = again.post_events(posthog_webhook()).json()
    assert duplicate["results"][0]["deliveries"][0]["decision"] == "duplicate"
    assert fake_twilio.requests == []
