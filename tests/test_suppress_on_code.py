"""Twilio codes whose action is `suppress_recipient` (invalid, landline, unreachable…):
the delivery fails and the number goes on the suppression list with the code, from the
create answer and from status callbacks; later events are skipped at admission. A
slow-down code in a callback cuts its sender's pace."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from app.store import keys
from app.twilio.error_catalog import CATALOG, ErrorAction
from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_twilio_webhooks import (
    DESTINATIONS,
    PUBLIC,
    sent_delivery,
    signed_post,
    status_form,
)

Start = Callable[..., RunningService]
NUMBER = "+14155552671"


def test_the_catalog_suppresses_invalid_landline_and_unreachable_numbers() -> None:
    suppressing = {c for c, e in CATALOG.items() if e.action is ErrorAction.SUPPRESS_RECIPIENT}
    assert {21211, 21614, 21635, 30005, 30006} <= suppressing


@pytest.mark.parametrize("code", [21211, 21614, 21635])
def test_a_create_answer_suppresses_the_number(
    start_service: Start, fake_twilio: FakeTwilio, code: int
) -> None:
    fake_twilio.enqueue(fake_twilio.fail_with(400, code, "cannot text this number"))
    service = start_service(DESTINATIONS)
    answer = service.post_events(posthog_webhook()).json()
    record = service.wait_for_status(answer["results"][0]["deliveries"][0]["delivery_id"], "failed")
    assert (record["error_code"], record["attempts"]) == (code, 1)
    with service.admin() as admin:
        suppression = admin.get(f"/v1/suppressions/{NUMBER}").json()
    assert suppression["source"] == f"twilio_{code}"
    again = service.post_events(posthog_webhook(uuid="second")).json()
    [decision] = again["results"][0]["deliveries"]
    assert decision["decision"] == "opted_out"
    assert decision["detail"].startswith(
        f"the recipient cannot take texts according to Twilio (error {code})"
    ), decision
    assert len(fake_twilio.message_requests) == 1


def test_a_status_callback_suppresses_the_number(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    form = status_form(record["twilio_sid"], "undelivered", ErrorCode="30006")
    assert signed_post(service, "/v1/twilio/status", form).status_code == 200
    assert service.delivery(record["id"])["status"] == "undelivered"
    with service.admin() as admin:
        assert admin.get(f"/v1/suppressions/{NUMBER}").json()["source"] == "twilio_30006"
    again = service.post_events(posthog_webhook(uuid="second")).json()
    assert again["results"][0]["deliveries"][0]["decision"] == "opted_out"
    # (the on-call destination texts its own number about the undelivered one)
    assert [r.form["To"] for r in fake_twilio.message_requests].count(NUMBER) == 1


def test_a_callback_with_a_passing_failure_suppresses_nobody(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    # 30003: the phone was off; 30007: filtered — neither says the number cannot text.
    for status, code in (("undelivered", "30003"), ("failed", "30007")):
        form = status_form(record["twilio_sid"], status, ErrorCode=code)
        assert signed_post(service, "/v1/twilio/status", form).json()["outcome"] != "replayed"
    with service.admin() as admin:
        assert admin.get(f"/v1/suppressions/{NUMBER}").status_code == 404
    again = service.post_events(posthog_webhook(uuid="second")).json()
    assert again["results"][0]["deliveries"][0]["decision"] == "queued"


def test_a_30001_callback_slows_its_sender_once(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(DESTINATIONS, public_base_url=PUBLIC)
    record = sent_delivery(service, fake_twilio)
    form = status_form(record["twilio_sid"], "failed", ErrorCode="30001")
    assert signed_post(service, "/v1/twilio/status", form).status_code == 200
    # Twilio's retry of the same callback changes nothing more.
    assert signed_post(service, "/v1/twilio/status", form).json()["outcome"] == "replayed"
    state = redis_client.hgetall(keys.sender_pace("+15005550006"))
    assert float(state["factor"]) == 0.5
