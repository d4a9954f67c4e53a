"""Replay of failed deliveries through the real API, the fake Twilio counting texts: a dry
run sends nothing and says why each is skipped; a real run re-checks opt-outs, throttle
windows and recipients the event already reached; running it twice sends nothing more."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

DESTINATIONS = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name }}!"
    from: "+15005550006"
  - id: promo
    events: [upgraded]
    body: "Thanks for upgrading"
    from: "+15005550006"
    throttle: {window: 1h}
  - id: also
    events: [paired]
    body: "Paired"
    from: "+15005550006"
"""

PHONES = ["+14155550101", "+14155550102", "+14155550103", "+14155550104"]


def uuid(n: int) -> str:
    return f"0190e4c6-0000-7000-8000-{n:012d}"


def admit(service: RunningService, n: int, phone: str, event: str = "signed up") -> list[str]:
    answer = service.post_events(posthog_webhook(uuid=uuid(n), event=event, phone=phone))
    assert answer.status_code == 202, answer.text
    return [d["delivery_id"] for d in answer.json()["results"][0]["deliveries"]]


def replay(service: RunningService, **body: Any) -> dict[str, Any]:
    with service.admin() as admin:
        answer = admin.post("/v1/deliveries/replay", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["delivery_id"]: item for item in report["items"]}


def settle(fake_twilio: FakeTwilio, expected: int) -> None:
    """Exactly `expected` texts, still after the worker had time to send more."""
    fake_twilio.wait_for_requests(expected)
    time.sleep(0.3)
    assert len(fake_twilio.message_requests) == expected


def test_dry_run_then_replay_once(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    unverified = FakeTwilio.fail_with(400, 21608, "The number is unverified")
    fake_twilio.enqueue(unverified, unverified, unverified)
    [a] = admit(service, 1, PHONES[0])
    [b] = admit(service, 2, PHONES[1])
    [c] = admit(service, 3, PHONES[2])
    for delivery_id in (a, b, c):
        assert service.wait_for_status(delivery_id, "failed")["error_code"] == 21608
    with service.admin() as admin:
        assert admin.post("/v1/suppressions", json={"number": PHONES[2]}).status_code == 201
    settle(fake_twilio, 3)

    dry = replay(service, destination="welcome")
    assert dry["dry_run"] is True
    assert (dry["selected"], dry["would_send"], dry["skipped"], dry["replayed"]) == (3, 2, 1, 0)
    items = by_id(dry)
    assert items[a]["action"] == items[b]["action"] == "would_send"
    assert items[c]["reason"] == "opted_out" and "opted out" in items[c]["detail"]
    settle(fake_twilio, 3)  # a dry run sends nothing

    assert replay(service, destination="welcome", error_codes=[30003])["selected"] == 0
    assert replay(service, until="2020-01-01T00:00:00Z")["selected"] == 0
    assert replay(service, destination="promo")["selected"] == 0

    real = replay(service, destination="welcome", dry_run=False)
    assert (real["replayed"], real["skipped"]) == (2, 1)
    new_a = by_id(real)[a]["replay_id"]
    sent = service.wait_for_status(new_a, "sent")
    assert sent["body"] == "Welcome Ada!" and sent["recipient"] == PHONES[0]
    assert f"replay of delivery {a}" in (sent["detail"] or "")
    settle(fake_twilio, 5)
    assert sorted(r.form["To"] for r in fake_twilio.message_requests[3:]) == PHONES[:2]

    # Idempotent: the same replay again sends nothing more, and says why.
    again = replay(service, destination="welcome", dry_run=False)
    assert again["replayed"] == 0
    items = by_id(again)
    assert items[a]["reason"] == "already_replayed" and items[a]["replay_id"] == new_a
    assert items[c]["reason"] == "opted_out"
    # The console's Resend: one id, the same operation.
    resend = replay(service, delivery_ids=[b], dry_run=False)
    assert by_id(resend)[b]["reason"] == "already_replayed"
    settle(fake_twilio, 5)


def test_replay_skips_reached_recipients_and_held_windows(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    unverified = FakeTwilio.fail_with(400, 21608, "The number is unverified")
    # promo, throttled per recipient: the first upgrade fails, the second is sent and
    # holds the window.
    fake_twilio.enqueue(unverified)
    [failed_promo] = admit(service, 10, PHONES[3], "upgraded")
    service.wait_for_status(failed_promo, "failed")
    [held] = admit(service, 11, PHONES[3], "upgraded")
    service.wait_for_status(held, "sent")
    # The same event reached its recipient through another delivery (the "signed up"
    # replay of the first test's kind, then this event under "also" with the same uuid).
    fake_twilio.enqueue(unverified)
    [failed_welcome] = admit(service, 12, PHONES[0])
    service.wait_for_status(failed_welcome, "failed")
    [reached] = admit(service, 12, PHONES[0], "paired")  # same uuid, another destination
    service.wait_for_status(reached, "sent")
    settle(fake_twilio, 4)

    report = replay(service, dry_run=False)
    items = by_id(report)
    assert items[failed_promo]["reason"] == "throttled"
    assert held in items[failed_promo]["detail"]
    assert items[failed_welcome]["reason"] == "already_reached"
    assert reached in items[failed_welcome]["detail"]
    assert report["replayed"] == 0
    settle(fake_twilio, 4)


def test_replay_refuses_bad_selections(start_service: Start) -> None:
    service = start_service(DESTINATIONS)
    with service.admin() as admin:
        for body, field in (
            ({"statuses": ["sent"]}, "statuses"),
            ({"limit": 0}, "limit"),
            ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
            ({"delivery_ids": ["nope"]}, "delivery_ids"),
            ({"dry_run": False, "extra": 1}, "extra"),
        ):
            answer = admin.post("/v1/deliveries/replay", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert field in answer.text
        assert service.client(None).post("/v1/deliveries/replay", json={}).status_code == 401
