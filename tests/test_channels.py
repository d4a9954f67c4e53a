"""Channels: MMS (`media_url` templates) and WhatsApp (`whatsapp:` addresses, a Content
template with rendered variables, its 1,024-character body), through the public ingest,
the worker and the fake Twilio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from app.destinations import ConfigError, load_destinations
from app.pipeline.render import TemplateRenderer
from tests.conftest import REPO, RunningService, posthog_webhook, write_destinations
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
CONTENT_SID = "HX" + "ab" * 16

DESTINATIONS = f"""
destinations:
  - id: mms
    events: [mms]
    body: "your receipt"
    from: "+15005550006"
    media_url:
      - "https://cdn.example.com/receipts/{{{{ event.properties.receipt }}}}.png"
      - "{{{{ event.properties.extra }}}}"
  - id: wa-template
    events: [wa-template]
    channel: whatsapp
    from: "+14155238886"
    content_sid: {CONTENT_SID}
    content_variables:
      "1": "{{{{ person.properties.name }}}}"
      "2": "{{{{ event.properties.code }}}}"
  - id: wa-text
    events: [wa-text]
    channel: whatsapp
    from: "+14155238886"
    body: "{{{{ event.properties.text }}}}"
"""


def decide(service: RunningService, event: str, **properties: object) -> dict[str, object]:
    payload = posthog_webhook(uuid=f"{event}-{len(properties)}", event=event, properties=properties)
    response = service.post_events(payload)
    assert response.status_code == 202, response.text
    [delivery] = response.json()["results"][0]["deliveries"]
    result: dict[str, object] = delivery
    return result


def test_mms_media_urls_are_rendered(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    delivery = decide(service, "mms", receipt="r-42", extra=None)  # a null URL is left out
    record = service.wait_for_status(str(delivery["delivery_id"]), "sent")
    assert record["media_urls"] == ["https://cdn.example.com/receipts/r-42.png"]
    [request] = fake_twilio.message_requests
    assert request.form_lists["MediaUrl"] == ["https://cdn.example.com/receipts/r-42.png"]
    assert request.form["Body"] == "your receipt"


def test_a_media_url_that_is_not_a_url_is_a_render_error(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    delivery = decide(service, "mms", receipt="r-1", extra="javascript:alert(1)")
    assert delivery["decision"] == "render_error"
    assert delivery["detail"] == "media_url.1: 'javascript:alert(1)' is not an http(s) URL"
    assert fake_twilio.message_requests == []


def test_whatsapp_content_template(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    delivery = decide(service, "wa-template", code='12"34')
    record = service.wait_for_status(str(delivery["delivery_id"]), "sent")
    assert (record["channel"], record["content_sid"]) == ("whatsapp", CONTENT_SID)
    [request] = fake_twilio.message_requests
    assert request.form["To"] == "whatsapp:+14155552671"
    assert request.form["From"] == "whatsapp:+14155238886"
    assert request.form["ContentSid"] == CONTENT_SID
    assert orjson.loads(request.form["ContentVariables"]) == {"1": "Ada", "2": '12"34'}
    assert "Body" not in request.form


def test_whatsapp_bodies_stop_at_1024(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    too_long = decide(service, "wa-text", text="x" * 1025)
    assert too_long["decision"] == "body_too_long"
    assert too_long["detail"] == (
        "body is 1025 characters (UTF-16 units); the limit is 1024 on WhatsApp"
    )
    fits = decide(service, "wa-text", text="x" * 1024, n=1)
    service.wait_for_status(str(fits["delivery_id"]), "sent")
    [request] = fake_twilio.message_requests
    assert request.form["To"] == "whatsapp:+14155552671" and len(request.form["Body"]) == 1024


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (f"body: hi, content_sid: {CONTENT_SID}", "set 'content_sid' or a 'body'/'template'"),
        ('body: hi, content_variables: {"1": x}', "'content_variables' fills a Content"),
        ("content_sid: HX123", "'HX' followed by 32 hex digits"),
        (
            "body: hi, channel: whatsapp, media_url: [https://a.example/1, https://a.example/2]",
            "at most one media URL",
        ),
        ("body: hi, media_url: [" + ", ".join(["https://a.example/x"] * 11) + "]", "at most 10"),
        ('body: hi, media_url: ["{{ oops"]', "media_url.0"),
        ("body: hi, channel: telegram", "must be one of sms, whatsapp"),
    ],
)
def test_channel_config_errors(tmp_path: Path, fields: str, message: str) -> None:
    text = f'destinations: [{{id: w, from: "+15005550006", {fields}}}]'
    with pytest.raises(ConfigError, match=message):
        load_destinations(write_destinations(tmp_path, text), TemplateRenderer(REPO / "templates"))


def test_a_whatsapp_stop_opts_the_number_out(start_service: Start, fake_twilio: FakeTwilio) -> None:
    from tests.test_twilio_webhooks import PUBLIC, signed_post

    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    stop = {
        "MessageSid": "SM" + "3" * 32,
        "From": "whatsapp:+14155552671",
        "To": "whatsapp:+14155238886",
        "Body": "STOP",
    }
    assert signed_post(service, "/v1/twilio/inbound", stop).status_code == 200
    delivery = decide(service, "wa-text", text="hello")
    assert delivery["decision"] == "opted_out"
    assert fake_twilio.message_requests == []
