"""Every non-queued decision explains itself (issue 10 item 3): the throttle window and
when it frees, the original of a duplicate, when and how a recipient opted out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import THROTTLED_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_twilio_webhooks import DESTINATIONS, PUBLIC, signed_post

Start = Callable[..., RunningService]
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def decision(service: RunningService, **event: Any) -> dict[str, Any]:
    answer = service.post_events(posthog_webhook(**event))
    assert answer.status_code == 202, answer.text
    [delivery] = answer.json()["results"][0]["deliveries"]
    return delivery  # type: ignore[no-any-return]


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_throttled_names_the_window_since_when_and_until_when(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(THROTTLED_DESTINATION)
    first = decision(service, uuid="first")
    sent = service.wait_for_status(first["delivery_id"], "sent")
    held = decision(service, uuid="second")
    assert held["decision"] == "throttled"
    match = re.fullmatch(
        rf"one message per 1h per recipient: the window is held since ({ISO}) by delivery "
        rf"(dl_\w+) and frees at ({ISO})",
        held["detail"],
    )
    assert match, held["detail"]
    since, holder, frees = parse(match[1]), match[2], parse(match[3])
    assert holder == first["delivery_id"]
    # The window runs from the text.
    assert abs(since - parse(sent["updated_at"])) < timedelta(seconds=1)
    assert abs((frees - since) - timedelta(hours=1)) < timedelta(seconds=1)
    # The record keeps the reason; the same words come back for every later event.
    assert service.delivery(held["delivery_id"])["reason"] == "throttled"
    assert holder in decision(service, uuid="third")["detail"]


def test_a_window_held_by_a_text_not_sent_yet_says_so(start_service: Start) -> None:
    service = start_service(THROTTLED_DESTINATION, run_worker=False)
    first = decision(service, uuid="first")
    held = decision(service, uuid="second")
    assert held["decision"] == "throttled"
    assert held["detail"] == (
        "one message per 1h per recipient: the window is held by delivery "
        f"{first['delivery_id']}, not sent yet; it frees 1h after that text"
    )


def test_duplicate_names_the_original_and_when_it_was_handled(start_service: Start) -> None:
    service = start_service(THROTTLED_DESTINATION, run_worker=False)
    before = datetime.now(UTC).replace(microsecond=0)
    original = decision(service)
    again = decision(service)
    assert again["decision"] == "duplicate"
    assert again["delivery_id"] == original["delivery_id"]
    match = re.fullmatch(
        rf"this event was already handled for this destination at ({ISO}): delivery (dl_\w+)",
        again["detail"],
    )
    assert match, again["detail"]
    assert before <= parse(match[1]) <= datetime.now(UTC)
    assert match[2] == original["delivery_id"]


def test_opted_out_says_since_when_and_how(start_service: Start, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(
        fake_twilio.fail_with(400, 21610, "Attempt to send to unsubscribed recipient")
    )
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    # Twilio 21610: the worker's send fails and suppresses the number.
    failed = decision(service, uuid="refused", phone="+14155550001")
    service.wait_for_status(failed["delivery_id"], "failed")
    # A keyword: a signed inbound STOP.
    stop = {
        "MessageSid": "SM" + "5" * 32,
        "From": "+14155550002",
        "To": "+15005550006",
        "Body": " stop ",
    }
    assert signed_post(service, "/v1/twilio/inbound", stop).status_code == 200
    # The API.
    with service.admin() as admin:
        added = admin.post("/v1/suppressions", json={"number": "+14155550003"})
        assert added.status_code == 201

    expected = {
        "+14155550001": "according to Twilio (error 21610: unsubscribed recipient)",
        "+14155550002": "by texting STOP",
        "+14155550003": "through the API",
    }
    for phone, how in expected.items():
        skipped = decision(service, uuid=f"after-{phone}", phone=phone)
        assert skipped["decision"] == "opted_out"
        match = re.fullmatch(
            rf"the recipient opted out {re.escape(how)} \(suppressed since ({ISO})\)",
            skipped["detail"],
        )
        assert match, skipped["detail"]
        assert datetime.now(UTC) - parse(match[1]) < timedelta(seconds=30)
    assert len(fake_twilio.message_requests) == 1  # only the refused first attempt


def test_scheduled_says_until_when(start_service: Start) -> None:
    service = start_service(
        """
destinations:
  - {id: later, body: "Hi", from: "+15005550006", delay: 2h}
""",
        run_worker=False,
    )
    held = decision(service)
    assert held["decision"] == "scheduled"
    match = re.fullmatch(rf"held until ({ISO})", held["detail"])
    assert match, held["detail"]
    due = parse(match[1]) - datetime.now(UTC)
    assert timedelta(hours=2) - timedelta(seconds=30) < due <= timedelta(hours=2)
