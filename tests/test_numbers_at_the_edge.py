"""Every number that enters the service is normalized to ASCII E.164 once, at the edge:
written with a trailing newline, full-width or Arabic-Indic digits, it is the same number
for the suppression list, the delivery log and Twilio."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest
import redis

from app.store import keys
from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_twilio_webhooks import PUBLIC, signed_post

Start = Callable[..., RunningService]
OPTED_OUT = "+14155550077"
# The same number as an outside fuzzer sent it.
DISGUISES = [
    "+14155550077\n",
    "＋１４１５５５５００７７",  # full-width
    "+١٤١٥٥٥٥٠٠٧٧",  # Arabic-Indic
    "+۱۴۱۵۵۵۵۰۰۷۷",  # Extended Arabic-Indic (Persian)
    " +1 (415) 555-0077 ",
]
NO_DESTINATIONS = "destinations: []\n"


def suppress(service: RunningService, number: str = OPTED_OUT) -> None:
    with service.admin() as admin:
        assert admin.post("/v1/suppressions", json={"number": number}).status_code == 201


@pytest.mark.parametrize("written", DISGUISES)
def test_messages_api_never_texts_an_opted_out_number_however_written(
    start_service: Start, fake_twilio: FakeTwilio, written: str
) -> None:
    service = start_service(NO_DESTINATIONS)
    suppress(service)
    with service.admin() as admin:
        answer = admin.post(
            "/v1/messages", json={"to": written, "body": "hi", "from": "+15005550006"}
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["decision"] == "opted_out"
    record = service.delivery(answer.json()["delivery_id"])
    assert record["recipient"] == OPTED_OUT
    assert fake_twilio.requests == []


def test_what_reaches_twilio_is_plain_e164(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        answer = admin.post(
            "/v1/messages",
            json={"to": "＋１ ４１５ ５５５ ２６７１\n", "body": "hi", "from": "+١٥٠٠٥٥٥٠٠٠٦"},
        )
    assert answer.json()["decision"] == "queued", answer.text
    [request] = fake_twilio.wait_for_requests(1)
    assert (request.form["To"], request.form["From"]) == ("+14155552671", "+15005550006")
    assert service.delivery(answer.json()["delivery_id"])["recipient"] == "+14155552671"


def test_numbers_in_international_format_only_and_never_an_extension(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        for to, problem in [
            ("4155552671", "not in international format"),
            ("+14155552671 ext. 12", "has an extension"),
            ("+1415555267\n1", "is not a phone number"),
        ]:
            response = admin.post(
                "/v1/messages", json={"to": to, "body": "x", "from": "+15005550006"}
            )
            assert response.status_code == 422, to
            [error] = response.json()["detail"]
            assert error["field"] == "body.to" and problem in error["problem"], error
    assert fake_twilio.requests == []


def test_suppressions_api_stores_and_finds_the_plain_form(
    start_service: Start, redis_client: redis.Redis
) -> None:
    service = start_service(NO_DESTINATIONS)
    suppress(service, "＋１４１５５５５００７７")
    assert redis_client.hkeys(keys.SUPPRESSIONS) == [OPTED_OUT]
    with service.admin() as admin:
        for written in DISGUISES:
            found = admin.get(f"/v1/suppressions/{quote(written)}")
            assert found.json()["number"] == OPTED_OUT, written
        listed = admin.get("/v1/messages", params={"to": "＋１４１５５５５００７７"})
        assert listed.status_code == 200
        assert admin.delete(f"/v1/suppressions/{quote('+١٤١٥٥٥٥٠٠٧٧')}").status_code == 204
    assert redis_client.hlen(keys.SUPPRESSIONS) == 0


def test_message_list_filters_send_the_plain_form(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        listed = admin.get(
            "/v1/messages", params={"to": "＋１４１５５５５００７７", "from": "+15005550006\n"}
        )
        assert listed.status_code == 200, listed.text
        bad = admin.get("/v1/messages", params={"to": "12"})
    [request] = fake_twilio.requests
    assert (request.query["To"], request.query["From"]) == ([OPTED_OUT], ["+15005550006"])
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "query.to"


@pytest.mark.parametrize("written", DISGUISES[:3])
def test_inbound_stop_suppresses_the_plain_form(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis, written: str
) -> None:
    service = start_service(
        """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome!"
    from: "+15005550006"
""",
        public_base_url=PUBLIC,
    )
    stop = {
        "MessageSid": "SM" + "1" * 32,
        "From": written,
        "To": "＋１５００５５５０００６",
        "Body": "STOP",
    }
    assert signed_post(service, "/v1/twilio/inbound", stop).status_code == 200
    assert redis_client.hkeys(keys.SUPPRESSIONS) == [OPTED_OUT]
    answer = service.post_events(posthog_webhook(phone=OPTED_OUT)).json()
    assert answer["results"][0]["deliveries"][0]["decision"] == "opted_out"
    assert fake_twilio.requests == []


def test_destination_fixed_numbers_are_normalized(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        """
destinations:
  - id: oncall
    to: "＋１４１５５５５００７７"
    body: "alert"
    from: "+١٥٠٠٥٥٥٠٠٠٦"
  - id: other
    to: "+1 415 555 2671"
    body: "alert"
    from: "＋１５００５５５０００６"
"""
    )
    suppress(service)
    answer = service.post_events(posthog_webhook()).json()
    decisions = {d["destination"]: d["decision"] for d in answer["results"][0]["deliveries"]}
    assert decisions == {"oncall": "opted_out", "other": "queued"}
    [request] = fake_twilio.wait_for_requests(1)
    assert (request.form["To"], request.form["From"]) == ("+14155552671", "+15005550006")


def test_webhook_to_and_from_reach_events_in_plain_form(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        """
destinations:
  - id: echo
    events: [$sms_inbound]
    to: "+14155552671"
    body: "{{ event.properties.from }} -> {{ event.properties.to }}"
    from: "+15005550006"
""",
        public_base_url=PUBLIC,
    )
    hello = {
        "MessageSid": "SM" + "4" * 32,
        "From": "＋１４１５５５５００７７",
        "To": "+15005550006\n",
        "Body": "hi",
    }
    assert signed_post(service, "/v1/twilio/inbound", hello).status_code == 200
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == f"{OPTED_OUT} -> +15005550006"
