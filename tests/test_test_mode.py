"""Test mode: the whole pipeline runs, the Twilio call is recorded instead of made."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.conftest import ACCOUNT_SID, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

TEST_DESTINATION = """
destinations:
  - id: trial
    mode: test
    body: "Hello {{ person.properties.name }} 👋"
    from: "+15005550006"
    throttle: {window: 1h}
  - id: real
    events: [real]
    body: "live"
    from: "+15005550006"
"""


def test_test_mode_destination_mocks_the_send(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(TEST_DESTINATION, public_base_url="https://sms.example.com")
    answer = service.post_events(posthog_webhook()).json()
    [delivery] = answer["results"][0]["deliveries"]
    record = service.wait_for_status(delivery["delivery_id"], "mocked")
    assert fake_twilio.requests == []
    assert record["mode"] == "test" and record["twilio_sid"].startswith("SM")
    assert record["encoding"] == "UCS-2"
    request = record["twilio_request"]
    assert (
        request["url"] == f"{fake_twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    )
    assert request["form"] == {
        "To": "+14155552671",
        "From": "+15005550006",
        "Body": "Hello Ada 👋",
        "StatusCallback": f"https://sms.example.com/v1/twilio/status/{delivery['delivery_id']}",
    }
    assert request["auth"] == {"username": ACCOUNT_SID, "password": "[redacted]"}


def test_test_sends_never_consume_a_live_window(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    yaml = TEST_DESTINATION.replace("mode: test", "mode: test\n    events: [signed up]")
    live_twin = (
        yaml
        + """
  - id: trial-live
    events: [signed up]
    body: "live twin"
    from: "+15005550006"
    throttle: {window: 1h, scope: global}
  - id: trial-test-global
    mode: test
    events: [signed up]
    body: "test twin"
    from: "+15005550006"
    throttle: {window: 1h, scope: global}
"""
    )
    service = start_service(live_twin)
    decisions = {
        d["destination"]: d["decision"]
        for d in service.post_events(posthog_webhook()).json()["results"][0]["deliveries"]
    }
    # Same recipient, same global scope: the test one has its own key space.
    assert decisions == {"trial": "queued", "trial-live": "queued", "trial-test-global": "queued"}
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == "live twin"


def test_global_test_mode(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(TEST_DESTINATION, test_mode=True)
    answer = service.post_events(posthog_webhook(event="real")).json()
    deliveries = {d["destination"]: d for d in answer["results"][0]["deliveries"]}
    record = service.wait_for_status(deliveries["real"]["delivery_id"], "mocked")
    assert record["mode"] == "test"
    assert record["twilio_request"]["form"]["Body"] == "live"
    assert fake_twilio.requests == []


def test_destination_test_endpoint_traces_without_consuming(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(TEST_DESTINATION)
    with service.admin() as admin:
        trace = admin.post("/v1/destinations/trial/test", json={"event": posthog_webhook()}).json()
        assert trace["matched"] is True
        assert trace["decision"] == "would_send"
        assert trace["recipient"] == "+14155552671"
        assert trace["body"] == "Hello Ada 👋"
        assert (trace["encoding"], trace["segments"], trace["length"]) == ("UCS-2", 1, 12)
        assert trace["throttle"]["held_by"] is None
        assert trace["twilio_request"]["form"]["To"] == "+14155552671"
        # Nothing consumed: the real event still goes out and the window is still free.
        answer = service.post_events(posthog_webhook()).json()
        assert answer["results"][0]["deliveries"][0]["decision"] == "queued"
        again = admin.post("/v1/destinations/trial/test", json={"event": posthog_webhook()}).json()
        assert again["decision"] == "throttled" and again["throttle"]["held_by"]
        assert again["duplicate_of"] == answer["results"][0]["deliveries"][0]["delivery_id"]

        unmatched = admin.post(
            "/v1/destinations/real/test", json={"event": posthog_webhook()}
        ).json()
        assert unmatched["matched"] is False and "not in events" in unmatched["unmatched_because"]
    assert fake_twilio.requests == []


def test_destination_test_can_really_send(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(TEST_DESTINATION)
    with service.admin() as admin:
        trace = admin.post(
            "/v1/destinations/real/test",
            json={"event": posthog_webhook(event="real"), "mock": False},
        ).json()
    assert trace["decision"] == "sent" and trace["twilio_response"]["sid"].startswith("SM")
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == "live"


def test_destination_test_never_texts_an_opted_out_number(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(TEST_DESTINATION)
    event = posthog_webhook(event="real")
    with service.admin() as admin:
        added = admin.post("/v1/suppressions", json={"number": "+14155552671"})
        assert added.status_code == 201
        trace = admin.post("/v1/destinations/real/test", json={"event": event, "mock": False})
        # Ingest decides the same for the same event: one piece of code decides both.
        answer = service.post_events(event).json()
    assert trace.status_code == 200, trace.text
    trace_json = trace.json()
    assert trace_json["decision"] == "opted_out"
    assert "through the API" in trace_json["detail"]
    assert trace_json["twilio_response"] is None
    assert answer["results"][0]["deliveries"][0]["decision"] == "opted_out"
    time.sleep(0.3)  # a send, were one made, would have reached the fake by now
    assert fake_twilio.requests == []


def test_destination_test_errors(start_service: Start) -> None:
    service = start_service(TEST_DESTINATION)
    with service.admin() as admin:
        assert (
            admin.post("/v1/destinations/nope/test", json={"event": {"event": "x"}}).status_code
            == 404
        )
        bad = admin.post("/v1/destinations/trial/test", json={"event": {"properties": {}}})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "event.event"
    with httpx.Client(base_url=service.base_url) as anonymous:
        assert anonymous.post("/v1/destinations/trial/test", json={}).status_code == 401


def test_deliveries_listing_filters_and_pages(start_service: Start) -> None:
    service = start_service(TEST_DESTINATION, test_mode=True)
    for i in range(5):
        service.post_events(posthog_webhook(uuid=f"u{i}", phone=f"+1415555267{i}", event="real"))
    with service.admin() as admin:
        first = admin.get("/v1/deliveries", params={"limit": 2, "destination": "real"}).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = admin.get(
            "/v1/deliveries",
            params={"limit": 10, "destination": "real", "cursor": first["next_cursor"]},
        ).json()
        assert len(rest["items"]) == 3 and rest["next_cursor"] is None
        ids = [i["id"] for i in first["items"] + rest["items"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        by_phone = admin.get("/v1/deliveries", params={"recipient": "(415) 555-2673"}).json()
        # Both destinations (trial listens to every event) sent to that number.
        assert [i["recipient"] for i in by_phone["items"]] == ["+14155552673"] * 2
        assert admin.get("/v1/deliveries", params={"recipient": "nope"}).status_code == 422
        assert admin.get("/v1/deliveries/dl_" + "0" * 28).status_code == 404
        malformed = admin.get("/v1/deliveries/dl_missing")
        assert malformed.status_code == 422
        assert malformed.json()["detail"][0]["field"] == "path.delivery_id"
    with httpx.Client(base_url=service.base_url) as anonymous:
        assert anonymous.get("/v1/deliveries").status_code == 401
