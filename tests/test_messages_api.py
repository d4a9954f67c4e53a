"""Message operations through the API: send now or later, get, list, cancel, redact, delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from app.store import keys
from tests.conftest import ACCOUNT_SID, RunningService
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
NO_DESTINATIONS = "destinations: []\n"
SERVICE = "MG" + "e5" * 16


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def test_send_now_goes_through_the_queue(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        answer = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "Hello",
                "from": "+15005550006",
                "media_url": ["https://example.com/a.png", "https://example.com/b.png"],
                "validity_period": 600,
                "status_callback": "https://hooks.example.com/status",
            },
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["decision"] == "queued"
    record = service.wait_for_status(answer.json()["delivery_id"], "sent")
    assert record["destination"] == "$api"
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form_lists["MediaUrl"] == [
        "https://example.com/a.png",
        "https://example.com/b.png",
    ]
    assert request.form["ValidityPeriod"] == "600"
    assert request.form["StatusCallback"] == "https://hooks.example.com/status"


def test_idempotency_key_makes_retries_safe(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    message = {"to": "+14155552671", "body": "once", "from": "+15005550006"}
    with service.admin() as admin:
        first = admin.post("/v1/messages", json=message, headers={"Idempotency-Key": "k1"}).json()
        again = admin.post("/v1/messages", json=message, headers={"Idempotency-Key": "k1"}).json()
    assert {k: again[k] for k in ("delivery_id", "decision")} == {
        "delivery_id": first["delivery_id"],
        "decision": "duplicate",
    }
    assert first["delivery_id"] in again["detail"]
    fake_twilio.wait_for_requests(1)


def test_validation_happens_before_anything_is_queued(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(NO_DESTINATIONS)
    base = {"to": "+14155552671", "body": "x", "from": "+15005550006"}
    cases = [
        ({**base, "to": "4155552671"}, "to"),
        ({**base, "to": "+12"}, "to"),
        ({**base, "to": "+15551234567"}, "to"),
        ({**base, "body": "x" * 1601}, "body"),
        ({**base, "body": None}, ""),
        ({**base, "media_url": [f"https://e.com/{i}" for i in range(11)]}, "media_url"),
        ({**base, "validity_period": 36001}, "validity_period"),
        ({**base, "messaging_service_sid": SERVICE}, ""),
        ({**base, "send_at": iso(-timedelta(minutes=1))}, "send_at"),
        ({**base, "send_at": iso(timedelta(days=31))}, "send_at"),
    ]
    with service.admin() as admin:
        for payload, field in cases:
            response = admin.post("/v1/messages", json=payload)
            assert response.status_code == 422, (payload, response.text)
            assert response.json()["detail"][0]["field"].endswith(field), response.json()
    assert redis_client.exists(keys.DELIVERY_INDEX) == 0
    assert fake_twilio.requests == []


def test_schedule_within_twilios_window_uses_twilio(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with service.admin() as admin:
        answer = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "later",
                "messaging_service_sid": SERVICE,
                "send_at": send_at.isoformat(),
            },
        ).json()
    assert answer["decision"] == "queued"
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["ScheduleType"] == "fixed"
    assert request.form["SendAt"] == send_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    record = service.wait_for_status(answer["delivery_id"], "scheduled")
    assert record["twilio_status"] == "scheduled" and record["twilio_sid"]

    with service.admin() as admin:
        canceled = admin.post(f"/v1/messages/{answer['delivery_id']}/cancel").json()
    assert canceled == {"sid": record["twilio_sid"], "status": "canceled"}
    assert fake_twilio.requests[-1].form == {"Status": "canceled"}
    assert service.delivery(answer["delivery_id"])["status"] == "canceled"


def test_schedule_we_hold_then_send_or_cancel(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        # No Messaging Service: Twilio cannot schedule, we hold it.
        soon = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "soon",
                "from": "+15005550006",
                "send_at": iso(timedelta(seconds=1)),
            },
        ).json()
        later = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "later",
                "from": "+15005550006",
                "send_at": iso(timedelta(hours=5)),
            },
        ).json()
        assert soon["decision"] == later["decision"] == "scheduled"
        canceled = admin.post(f"/v1/messages/{later['delivery_id']}/cancel")
        assert canceled.json() == {"delivery_id": later["delivery_id"], "status": "canceled"}
        again = admin.post(f"/v1/messages/{later['delivery_id']}/cancel")
        assert again.status_code == 409
    record = service.wait_for_status(soon["delivery_id"], "sent")
    assert [h["status"] for h in record["history"]][:2] == ["scheduled", "sending"]
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == "soon" and "SendAt" not in request.form


def test_get_list_redact_delete(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    sids = [
        fake_twilio.add_message(to="+14155552671", body=f"m{i}", status="delivered")["sid"]
        for i in range(3)
    ]
    with service.admin() as admin:
        one = admin.get(f"/v1/messages/{sids[0]}").json()
        assert (one["sid"], one["body"]) == (sids[0], "m0")
        page = admin.get("/v1/messages", params={"to": "+14155552671", "page_size": 2}).json()
        assert len(page["items"]) == 2 and page["next_cursor"]
        rest = admin.get("/v1/messages", params={"cursor": page["next_cursor"]}).json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None
        elsewhere = admin.get(
            "/v1/messages", params={"cursor": "/2010-04-01/Accounts/AC1/Calls.json"}
        )
        assert elsewhere.status_code == 422
        redacted = admin.post(f"/v1/messages/{sids[1]}/redact").json()
        assert redacted["body"] == ""
        assert admin.delete(f"/v1/messages/{sids[2]}").status_code == 204
        missing = admin.get(f"/v1/messages/{sids[2]}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "twilio_error"
        assert missing.json()["detail"]["code"] == 20404
        assert admin.get("/v1/messages/not-a-sid").status_code == 422


def test_delete_incomplete_message_is_409(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    sid = fake_twilio.add_message(to="+14155552671", body="x", status="sending")["sid"]
    with service.admin() as admin:
        response = admin.delete(f"/v1/messages/{sid}")
    assert response.status_code == 409
    assert "20009" in response.json()["detail"]
    assert ACCOUNT_SID in fake_twilio.requests[-1].path


def test_cancelling_twice_is_409_whoever_holds_it(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        held_here = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "later",
                "from": "+15005550006",
                "send_at": iso(timedelta(hours=5)),
            },
        ).json()
        at_twilio = admin.post(
            "/v1/messages",
            json={
                "to": "+14155552671",
                "body": "later",
                "messaging_service_sid": SERVICE,
                "send_at": iso(timedelta(days=2)),
            },
        ).json()
        sid = service.wait_for_status(at_twilio["delivery_id"], "scheduled")["twilio_sid"]
        for reference in (held_here["delivery_id"], at_twilio["delivery_id"], sid):
            first = admin.post(f"/v1/messages/{reference}/cancel")
            again = admin.post(f"/v1/messages/{reference}/cancel")
            if reference != sid:  # the SID was canceled through its delivery id already
                assert first.status_code == 200, first.text
            assert again.status_code == 409, (reference, again.text)
            assert again.json()["error"] == "conflict"
            assert "only scheduled messages cancel" in again.json()["detail"]
    assert fake_twilio.requests[-1].form == {"Status": "canceled"}
