"""SMS_TWILIO_TIMEOUT is a deadline for the whole request, and reclaim waits past it.

Reproduces issue 12's row "Twilio trickling its answer": with a per-read timeout a
trickled answer kept the request alive past SMS_RECLAIM_IDLE, a second worker reclaimed the
message still in flight and Twilio created it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import SIGNUP_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]


def test_two_workers_and_a_trickling_twilio_create_each_message_once(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # Each answer trickles in for ~45 s; the deadline is 1 s, reclaim the least it allows.
    fake_twilio.trickle = 0.05
    settings = {"twilio_timeout": 1, "reclaim_idle": 3}
    first = start_service(SIGNUP_DESTINATION, **settings)
    start_service(SIGNUP_DESTINATION, **settings)  # a second worker on the same stream
    delivery_ids = []
    for n in range(3):
        answer = first.post_events(posthog_webhook(uuid=f"evt-{n}", phone=f"+1415555267{n}"))
        delivery_ids.append(answer.json()["results"][0]["deliveries"][0]["delivery_id"])
    started = time.monotonic()
    records = [first.wait_for_status(d, "unknown", timeout=5) for d in delivery_ids]
    assert time.monotonic() - started < 2.5  # given up at the deadline, not after the trickle
    for record in records:
        assert "outcome unknown" in record["error_message"]
        assert "ReadTimeout" in record["error_message"]
    # Past the reclaim time: nobody took them over and sent them again (the outcome stays
    # unknown until Twilio's list is asked, SMS_TWILIO_LIST_DELAY later).
    time.sleep(4)
    assert len(fake_twilio.message_requests) == 3
    assert sorted(m["to"] for m in fake_twilio.messages.values()) == [
        f"+1415555267{n}" for n in range(3)
    ]
