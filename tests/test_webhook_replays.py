"""Signed Twilio webhooks are applied once per MessageSid + status (and idempotency token):
a captured request replayed later changes nothing (issue 10 item 10)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis
from twilio.request_validator import RequestValidator

from app.store import keys
from tests.conftest import AUTH_TOKEN, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_twilio_webhooks import DESTINATIONS, PUBLIC, sent_delivery, status_form

Start = Callable[..., RunningService]
PHONE = "+14155552671"


def post(
    service: RunningService, path: str, form: dict[str, str], token: str | None = None
) -> httpx.Response:
    """A correctly signed webhook, as Twilio (or someone who captured one) sends it."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}{path}", form)
    headers = {"X-Twilio-Signature": signature}
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    with httpx.Client(base_url=service.base_url) as client:
        response = client.post(path, data=form, headers=headers)
    assert response.status_code == 200, response.text
    return response


def inbound(sid_digit: str, body: str) -> dict[str, str]:
    return {"MessageSid": "SM" + sid_digit * 32, "From": PHONE, "To": "+15005550006", "Body": body}


def suppressed(service: RunningService) -> bool:
    with service.admin() as admin:
        return admin.get(f"/v1/suppressions/{PHONE}").status_code == 200


def test_a_replayed_stop_after_start_changes_nothing(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    stop, start = inbound("1", "STOP"), inbound("2", "START")
    post(service, "/v1/twilio/inbound", stop)
    assert suppressed(service)
    post(service, "/v1/twilio/inbound", start)
    assert not suppressed(service)

    post(service, "/v1/twilio/inbound", stop)  # the captured STOP, replayed
    assert not suppressed(service)
    answer = service.post_events(posthog_webhook()).json()
    assert answer["results"][0]["deliveries"][0]["decision"] == "queued"
    fake_twilio.wait_for_requests(1)
    # A replayed START after a new STOP does not opt them back in either.
    post(service, "/v1/twilio/inbound", inbound("3", "stop"))
    post(service, "/v1/twilio/inbound", start)
    assert suppressed(service)


def test_a_replayed_inbound_message_feeds_destinations_once(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    hello = inbound("4", "hello")
    post(service, "/v1/twilio/inbound", hello)
    post(service, "/v1/twilio/inbound", hello)
    [reply] = fake_twilio.wait_for_requests(1)
    assert reply.form["Body"] == "Thanks, we got: hello"


def test_a_replayed_21610_callback_does_not_suppress_again(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    sid = sent_delivery(service, fake_twilio)["twilio_sid"]
    failed = status_form(sid, "failed", ErrorCode="21610")
    assert post(service, "/v1/twilio/status", failed).json()["outcome"] == "applied"
    assert suppressed(service)
    with service.admin() as admin:
        assert admin.delete(f"/v1/suppressions/{PHONE}").status_code == 204
    assert post(service, "/v1/twilio/status", failed).json()["outcome"] == "replayed"
    assert not suppressed(service)


def test_the_idempotency_token_stops_a_retry_without_a_sid(
    start_service: Start, redis_client: redis.Redis
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    no_sid = {"From": PHONE, "To": "+15005550006", "Body": "STOP"}
    post(service, "/v1/twilio/inbound", no_sid, token="tok-1")
    with service.admin() as admin:
        assert admin.delete(f"/v1/suppressions/{PHONE}").status_code == 204
    post(service, "/v1/twilio/inbound", no_sid, token="tok-1")  # Twilio's retry
    assert not suppressed(service)
    # Remembered as long as deliveries are, no longer.
    ttl = redis_client.ttl(keys.webhook_token("tok-1"))
    assert 0 < ttl <= service.settings.delivery_retention


def test_unmatched_callbacks_are_kept_once(start_service: Start, redis_client: redis.Redis) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    unknown = status_form("SM" + "9" * 32, "delivered")
    assert post(service, "/v1/twilio/status", unknown).json()["outcome"] == "unmatched"
    assert post(service, "/v1/twilio/status", unknown).json()["outcome"] == "replayed"
    assert redis_client.xlen(keys.UNMATCHED_CALLBACKS) == 1


def test_twilios_retry_of_a_webhook_that_failed_half_way_is_applied(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    hello = inbound("6", "hello")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}/v1/twilio/inbound", hello)
    # The auto-reply's admission fails (a key it writes is of the wrong type): 503.
    redis_client.set(keys.LOGGED_DESTINATIONS, "not a set")
    with httpx.Client(base_url=service.base_url) as client:
        failed = client.post(
            "/v1/twilio/inbound", data=hello, headers={"X-Twilio-Signature": signature}
        )
    assert failed.status_code == 503
    redis_client.delete(keys.LOGGED_DESTINATIONS)
    post(service, "/v1/twilio/inbound", hello)  # Twilio retries: applied, not "replayed"
    [reply] = fake_twilio.wait_for_requests(1)
    assert reply.form["Body"] == "Thanks, we got: hello"
