"""An event that reaches no destination says why, in the ingest answer itself."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

DESTINATIONS = """
destinations:
  - id: pro-only
    events: [signed up]
    body: pro
    from: "+15005550006"
    filters:
      - {key: plan, operator: exact, value: pro}
      - {key: name, type: person, operator: icontains, value: ad}
  - id: vip
    events: [signed up]
    body: vip
    from: "+15005550006"
    filters: [{key: vip, type: person, operator: exact, value: true}]
  - id: other-event
    events: [purchase]
    body: bought
    from: "+15005550006"
"""


def test_an_unmatched_event_says_which_filter_failed(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    answer = service.post_events(posthog_webhook(uuid="m1", properties={"plan": "free"})).json()
    [result] = answer["results"]
    assert result["deliveries"] == []
    assert result["detail"] == "no destination matched"
    assert result["unmatched"] == [
        {
            "destination": "pro-only",
            "because": "filter failed: event.plan exact 'pro' (it is 'free')",
        },
        {"destination": "vip", "because": "filter failed: person.vip exact True (it is not set)"},
    ]
    nobody = service.post_events(posthog_webhook(uuid="m2", event="$pageview")).json()
    assert nobody["results"][0] == {
        "index": 0,
        "event_uuid": "m2",
        "event": "$pageview",
        "deliveries": [],
        "detail": "no destination listens to event '$pageview'",
        "unmatched": [],
    }
    assert fake_twilio.message_requests == []


def test_a_matched_event_lists_only_its_deliveries(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    [result] = service.post_events(posthog_webhook(uuid="m3")).json()["results"]
    assert [d["destination"] for d in result["deliveries"]] == ["pro-only"]
    assert "unmatched" not in result and "detail" not in result
    fake_twilio.wait_for_requests(1)


def test_a_long_value_is_shown_short(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False)
    answer = service.post_events(posthog_webhook(properties={"plan": "x" * 10_000})).json()
    because = answer["results"][0]["unmatched"][0]["because"]
    assert because.endswith("(it is '" + "x" * 56 + "...)")
