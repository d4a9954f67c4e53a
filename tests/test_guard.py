"""The guards end to end, through the public ingest and the real worker: countries,
quiet hours (deferred, then released past a fresh opt-out check), message lifetimes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio, ScriptedResponse

Start = Callable[..., RunningService]
GB_NUMBER = "+442079460000"


def only_delivery(service: RunningService, **event: object) -> dict[str, object]:
    response = service.post_events(posthog_webhook(**event))  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    [delivery] = response.json()["results"][0]["deliveries"]
    result: dict[str, object] = delivery
    return result


def test_a_number_abroad_is_blocked_by_default(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service('destinations: [{id: w, body: hi, from: "+15005550006"}]')
    delivery = only_delivery(service, phone=GB_NUMBER)
    assert delivery["decision"] == "blocked_country"
    assert delivery["detail"] == (
        "+4420•••0000 is a number in GB; this destination texts US only (SMS_ALLOWED_COUNTRIES)"
    )
    record = service.delivery(str(delivery["delivery_id"]))
    assert (record["status"], record["reason"]) == ("skipped", "blocked_country")
    with service.admin() as admin:
        event = posthog_webhook(phone=GB_NUMBER)
        trace = admin.post("/v1/destinations/w/test", json={"event": event}).json()
    assert (trace["decision"], trace["detail"]) == ("blocked_country", delivery["detail"])
    us = only_delivery(service, uuid="e2")  # a US number
    service.wait_for_status(str(us["delivery_id"]), "sent")
    assert [r.form["To"] for r in fake_twilio.message_requests] == ["+14155552671"]


def test_allowed_countries_setting(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        'destinations: [{id: w, body: hi, from: "+15005550006"}]', allowed_countries="us, GB"
    )
    assert only_delivery(service, phone=GB_NUMBER)["decision"] == "queued"
    blocked = only_delivery(service, uuid="e2", phone="+33612345678")
    assert blocked["decision"] == "blocked_country"
    assert "texts GB, US only (SMS_ALLOWED_COUNTRIES)" in str(blocked["detail"])


def _window_closing_in(seconds: int) -> str:
    """A quiet window, in UTC, that began an hour ago and ends `seconds` from now."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(hours=1)).strftime("%H:%M:%S")
    end = (now + timedelta(seconds=seconds)).strftime("%H:%M:%S")
    return f'{{start: "{start}", end: "{end}", timezone: UTC}}'


def test_deferred_until_the_window_opens_then_opt_out_rechecked(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        f"""
destinations:
  - {{id: w, body: hi, from: "+15005550006", quiet_hours: {_window_closing_in(3)}}}
"""
    )
    kept = only_delivery(service, uuid="e1")
    opted_out = only_delivery(service, uuid="e2", phone="+14155552672")
    for delivery in (kept, opted_out):
        assert delivery["decision"] == "deferred"
        detail = str(delivery["detail"])
        assert (
            detail.startswith("quiet hours ")
            and "in UTC (quiet_hours.timezone): held until" in detail
        )
        release = datetime.fromisoformat(detail.rsplit(" ", 1)[1])
        assert timedelta(0) < release - datetime.now(UTC) <= timedelta(seconds=4)
    with service.admin() as admin:
        trace = admin.post("/v1/destinations/w/test", json={"event": posthog_webhook()}).json()
        assert trace["decision"] == "deferred" and trace["schedule"] == "local"
        assert str(trace["detail"]).startswith("quiet hours ")
        admin.post("/v1/suppressions", json={"number": "+14155552672"}).raise_for_status()
    assert fake_twilio.message_requests == []
    sent = service.wait_for_status(str(kept["delivery_id"]), "sent", timeout=10)
    assert [h["status"] for h in sent["history"]] == ["scheduled", "sending", "sent"]
    skipped = service.wait_for_status(str(opted_out["delivery_id"]), "skipped", timeout=10)
    assert skipped["reason"] == "opted_out"
    assert [r.form["To"] for r in fake_twilio.message_requests] == ["+14155552671"]


def test_expired_after_a_long_backoff_never_sent_late(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.enqueue(ScriptedResponse(500))  # then Twilio's ordinary 201
    service = start_service(
        'destinations: [{id: code, body: "code 1234", from: "+15005550006", validity: 1s}]',
        retry_base_delay=4.0,  # the backoff (2-4 s) outlasts the 1 s lifetime
        retry_max_delay=4.0,
    )
    delivery = only_delivery(service)
    assert delivery["decision"] == "queued"
    record = service.wait_for_status(str(delivery["delivery_id"]), "expired", timeout=10)
    assert [h["status"] for h in record["history"]] == [
        "queued",
        "sending",
        "retrying",
        "sending",
        "expired",
    ]
    assert "not sent late" in record["history"][-1]["detail"]
    assert record["expires_at"] is not None
    [only] = fake_twilio.message_requests  # the 500; nothing after the expiry
    assert only.form["ValidityPeriod"] == "1"
    time.sleep(0.5)
    assert len(fake_twilio.message_requests) == 1
    with service.admin() as admin:  # /metrics takes the admin token
        metrics = admin.get("/metrics").text
    assert 'smsdest_sends_total{destination="code",status="expired"} 1.0' in metrics


def test_validity_is_sent_as_what_is_left(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        'destinations: [{id: code, body: "code", from: "+15005550006", validity: 10m}]'
    )
    delivery = only_delivery(service)
    service.wait_for_status(str(delivery["delivery_id"]), "sent")
    [request] = fake_twilio.message_requests
    assert 590 <= int(request.form["ValidityPeriod"]) <= 600
