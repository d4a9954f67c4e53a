"""Destinations with `delay` or a `send_at` template."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.destinations import ConfigError, load_destinations
from app.pipeline.render import TemplateRenderer
from tests.conftest import REPO, RunningService, posthog_webhook, write_destinations
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
SERVICE = "MG" + "f6" * 16

DESTINATIONS = f"""
destinations:
  - {{id: soon, events: [soon], body: "later", from: "+15005550006", delay: 1s}}
  - id: reminder
    events: [reminder]
    body: "your appointment"
    messaging_service_sid: {SERVICE}
    send_at: "{{{{ event.properties.remind_at }}}}"
"""


def test_delay_holds_the_message_then_sends(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    answer = service.post_events(posthog_webhook(event="soon")).json()
    [delivery] = answer["results"][0]["deliveries"]
    assert delivery["decision"] == "scheduled"
    assert fake_twilio.requests == []
    record = service.wait_for_status(delivery["delivery_id"], "sent", timeout=10)
    assert [h["status"] for h in record["history"]] == ["scheduled", "sending", "sent"]
    [request] = fake_twilio.message_requests
    assert "SendAt" not in request.form


def test_send_at_template_within_twilios_window_is_scheduled_by_twilio(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    remind_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    event = posthog_webhook(event="reminder", properties={"remind_at": remind_at.isoformat()})
    answer = service.post_events(event).json()
    assert answer["results"][0]["deliveries"][0]["decision"] == "queued"
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["ScheduleType"] == "fixed"
    assert request.form["SendAt"] == remind_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    with service.admin() as admin:
        trace = admin.post("/v1/destinations/reminder/test", json={"event": event}).json()
    assert (trace["schedule"], trace["send_at"]) == ("twilio", remind_at.isoformat())


def test_bad_send_at_is_a_render_error(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    for value in ("tomorrow-ish", (datetime.now(UTC) + timedelta(days=400)).isoformat()):
        event = posthog_webhook(uuid=value, event="reminder", properties={"remind_at": value})
        [delivery] = service.post_events(event).json()["results"][0]["deliveries"]
        assert delivery["decision"] == "render_error"
        assert delivery["detail"].startswith("send_at:")
    assert fake_twilio.requests == []


def test_delay_and_send_at_are_exclusive(tmp_path: Path) -> None:
    text = """
destinations:
  - {id: x, body: b, from: "+15005550006", delay: 5m, send_at: "{{ event.timestamp }}"}
"""
    with pytest.raises(ConfigError, match="at most one of 'delay' or 'send_at'"):
        load_destinations(write_destinations(tmp_path, text), TemplateRenderer(REPO / "templates"))
