"""Twilio webhooks end to end: signatures (the twilio package's validator as the oracle),
status callbacks that never move backwards, opt-outs, and webhook-driven destinations."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import redis
from twilio.request_validator import RequestValidator

from app.store import keys
from tests.conftest import AUTH_TOKEN, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
PUBLIC = "https://sms.example.com"
ONCALL = "+14155550100"

DESTINATIONS = f"""
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome!"
    from: "+15005550006"
  - id: oncall
    events: [$sms_status]
    filters: [{{key: status, operator: exact, value: [failed, undelivered]}}]
    to: "{ONCALL}"
    body: "SMS {{{{ event.properties.delivery_id }}}} {{{{ event.properties.status }}}}"
    from: "+15005550006"
  - id: auto-reply
    events: [$sms_inbound]
    filters: [{{key: outcome, operator: exact, value: received}}]
    body: "Thanks, we got: {{{{ event.properties.body }}}}"
    from: "+15005550006"
"""


def signed_post(
    service: RunningService,
    path: str,
    form: dict[str, str],
    *,
    signature: str | None = None,
    url: str | None = None,
) -> httpx.Response:
    url = url or f"{PUBLIC}{path}"
    if signature is None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    with httpx.Client(base_url=service.base_url) as client:
        return client.post(path, data=form, headers=headers)


def sent_delivery(service: RunningService, fake: FakeTwilio) -> dict[str, Any]:
    answer = service.post_events(posthog_webhook()).json()
    delivery_id = answer["results"][0]["deliveries"][0]["delivery_id"]
    fake.wait_for_requests(1)
    return service.wait_for_status(delivery_id, "sent")


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "MessageStatus": status,
        "To": "+14155552671",
        "From": "+15005550006",
        "AccountSid": "AC" + "a1" * 16,
        **extra,
    }


def test_status_callbacks_only_move_forward(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    sid = record["twilio_sid"]

    delivered = signed_post(service, "/v1/twilio/status", status_form(sid, "delivered"))
    assert delivered.status_code == 200 and delivered.json()["outcome"] == "applied"
    late = signed_post(service, "/v1/twilio/status", status_form(sid, "sent"))
    assert late.json()["outcome"] == "stale"
    again = signed_post(service, "/v1/twilio/status", status_form(sid, "delivered"))
    assert again.json()["outcome"] == "replayed"  # the same SID and status: applied once

    record = service.delivery(record["id"])
    assert (record["status"], record["twilio_status"]) == ("delivered", "delivered")
    assert [h["status"] for h in record["history"]] == ["queued", "sending", "sent", "delivered"]
    assert len(fake_twilio.message_requests) == 1  # delivered is not an alert


def test_bad_signatures_are_refused_and_change_nothing(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    form = status_form(record["twilio_sid"], "failed", ErrorCode="30003")
    good = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}/v1/twilio/status", form)
    tampered = {**form, "MessageStatus": "delivered"}
    wrong_url = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}/v1/twilio/other", form)
    for sent_form, signature in [(tampered, good), (form, wrong_url), (form, "")]:
        response = signed_post(service, "/v1/twilio/status", sent_form, signature=signature)
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
    assert service.delivery(record["id"])["status"] == "sent"


def test_signature_is_checked_against_the_public_url(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    form = status_form(record["twilio_sid"], "delivered")
    # Signed for the URL the app itself sees (not the public one): refused.
    internal = signed_post(
        service, "/v1/twilio/status", form, url=f"{service.base_url}/v1/twilio/status"
    )
    assert internal.status_code == 403
    # Twilio may sign the public URL with its default port spelled out.
    with_port = signed_post(
        service, "/v1/twilio/status", form, url="https://sms.example.com:443/v1/twilio/status"
    )
    assert with_port.status_code == 200


def test_unknown_sid_is_recorded_not_an_error(
    start_service: Start, redis_client: redis.Redis
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    response = signed_post(service, "/v1/twilio/status", status_form("SM" + "0" * 32, "sent"))
    assert response.status_code == 200 and response.json()["outcome"] == "unmatched"
    [(_, fields)] = redis_client.xrange(keys.UNMATCHED_CALLBACKS)
    assert fields["MessageSid"] == "SM" + "0" * 32


def test_failed_delivery_alerts_oncall_without_looping(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    failed = signed_post(
        service, "/v1/twilio/status", status_form(record["twilio_sid"], "failed", ErrorCode="30003")
    ).json()
    assert failed["outcome"] == "applied"
    [alert] = failed["events"][0]["deliveries"]
    assert alert["destination"] == "oncall" and alert["decision"] == "queued"
    alert_request = fake_twilio.wait_for_requests(2)[1]
    assert alert_request.form["To"] == ONCALL
    assert alert_request.form["Body"] == f"SMS {record['id']} failed"
    assert service.delivery(record["id"])["error_code"] == 30003

    # The alert's own failure is recorded but does not alert again.
    alert_record = service.wait_for_status(alert["delivery_id"], "sent")
    again = signed_post(
        service,
        "/v1/twilio/status",
        status_form(alert_record["twilio_sid"], "undelivered", ErrorCode="30005"),
    ).json()
    assert again == {"outcome": "applied", "events": []}
    assert len(fake_twilio.message_requests) == 2


def test_stop_and_start_keywords(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    stop = {
        "MessageSid": "SM" + "1" * 32,
        "From": "+14155552671",
        "To": "+15005550006",
        "Body": "  stop ",
    }
    response = signed_post(service, "/v1/twilio/inbound", stop)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Response></Response>" in response.text

    answer = service.post_events(posthog_webhook()).json()
    [blocked] = answer["results"][0]["deliveries"]
    assert blocked["decision"] == "opted_out"
    with service.admin() as admin:
        entry = admin.get("/v1/suppressions/+14155552671").json()
    assert (entry["source"], entry["keyword"]) == ("inbound", "STOP")

    start = {**stop, "MessageSid": "SM" + "2" * 32, "Body": "Unstop"}
    assert signed_post(service, "/v1/twilio/inbound", start).status_code == 200
    answer = service.post_events(posthog_webhook(uuid="after-start")).json()
    assert answer["results"][0]["deliveries"][0]["decision"] == "queued"
    fake_twilio.wait_for_requests(1)
    # Neither keyword message was auto-replied to (the auto-reply filters on outcome).
    assert [r.form["Body"] for r in fake_twilio.message_requests] == ["Welcome!"]


def test_opt_out_type_and_inbound_event(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    advanced = {
        "MessageSid": "SM" + "3" * 32,
        "From": "+447911123456",
        "To": "+15005550006",
        "Body": "please no more",
        "OptOutType": "STOP",
    }
    signed_post(service, "/v1/twilio/inbound", advanced)
    with service.admin() as admin:
        assert admin.get("/v1/suppressions/+447911123456").status_code == 200
    hello = {
        "MessageSid": "SM" + "4" * 32,
        "From": "+14155552671",
        "To": "+15005550006",
        "Body": "hello there",
    }
    signed_post(service, "/v1/twilio/inbound", hello)
    [reply] = fake_twilio.wait_for_requests(1)
    assert (reply.form["To"], reply.form["Body"]) == ("+14155552671", "Thanks, we got: hello there")


def test_twilio_21610_suppresses_the_number(start_service: Start, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(
        fake_twilio.fail_with(400, 21610, "Attempt to send to unsubscribed recipient")
    )
    service = start_service(DESTINATIONS)
    answer = service.post_events(posthog_webhook()).json()
    record = service.wait_for_status(answer["results"][0]["deliveries"][0]["delivery_id"], "failed")
    assert record["error_code"] == 21610
    with service.admin() as admin:
        assert admin.get("/v1/suppressions/+14155552671").json()["source"] == "twilio_21610"
    again = service.post_events(posthog_webhook(uuid="second")).json()
    assert again["results"][0]["deliveries"][0]["decision"] == "opted_out"
    assert len(fake_twilio.message_requests) == 1


def test_opt_out_between_queue_and_send(start_service: Start, fake_twilio: FakeTwilio) -> None:
    api_only = start_service(DESTINATIONS, run_worker=False)
    answer = api_only.post_events(posthog_webhook()).json()
    delivery_id = answer["results"][0]["deliveries"][0]["delivery_id"]
    with api_only.admin() as admin:
        assert admin.post("/v1/suppressions", json={"number": "(415) 555-2671"}).status_code == 201
    worker = start_service(DESTINATIONS)
    record = worker.wait_for_status(delivery_id, "skipped")
    assert record["reason"] == "opted_out"
    assert fake_twilio.requests == []


def test_json_body_webhook_with_body_sha256(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    body = orjson.dumps({"MessageSid": "SM" + "5" * 32})
    url = f"{PUBLIC}/v1/twilio/status?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    with httpx.Client(base_url=service.base_url) as client:
        ok = client.post(
            f"/v1/twilio/status?bodySHA256={hashlib.sha256(body).hexdigest()}",
            content=body,
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/json"},
        )
        tampered = client.post(
            f"/v1/twilio/status?bodySHA256={hashlib.sha256(body).hexdigest()}",
            content=body + b" ",
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/json"},
        )
    assert ok.status_code == 200
    assert tampered.status_code == 403


def test_suppressions_api(start_service: Start) -> None:
    service = start_service(DESTINATIONS)
    with service.admin() as admin:
        created = admin.post("/v1/suppressions", json={"number": "+44 7911 123456"})
        assert created.status_code == 201 and created.json()["number"] == "+447911123456"
        assert created.json()["added"] is True
        assert (
            admin.post("/v1/suppressions", json={"number": "+447911123456"}).json()["added"]
            is False
        )
        listed = admin.get("/v1/suppressions").json()
        assert [s["number"] for s in listed["items"]] == ["+447911123456"]
        assert admin.post("/v1/suppressions", json={"number": "nope"}).status_code == 422
        assert admin.delete("/v1/suppressions/+447911123456").status_code == 204
        assert admin.delete("/v1/suppressions/+447911123456").status_code == 404
    with httpx.Client(base_url=service.base_url) as anonymous:
        assert anonymous.get("/v1/suppressions").status_code == 401
