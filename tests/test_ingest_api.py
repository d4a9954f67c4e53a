"""Ingest end to end: real HTTP, real Redis, the fake Twilio server."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests.conftest import (
    ACCOUNT_SID,
    SIGNUP_DESTINATION,
    THROTTLED_DESTINATION,
    RunningService,
    posthog_webhook,
)
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]


def test_posthog_webhook_is_sent(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION)
    response = service.post_events(posthog_webhook())
    assert response.status_code == 202
    [result] = response.json()["results"]
    assert result["event"] == "signed up"
    [delivery] = result["deliveries"]
    assert delivery["destination"] == "welcome" and delivery["decision"] == "queued"

    [request] = fake_twilio.wait_for_requests(1)
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {"To": "+14155552671", "From": "+15005550006", "Body": "Welcome Ada!"}
    record = service.wait_for_status(delivery["delivery_id"], "sent")
    assert record["twilio_sid"].startswith("SM")
    assert record["encoding"] == "GSM-7" and record["segments"] == 1
    assert [h["status"] for h in record["history"]] == ["queued", "sending", "sent"]


def test_raw_posthog_and_segment_shapes(start_service: Start, fake_twilio: FakeTwilio) -> None:
    # The Segment user's number is British: every country is allowed here.
    service = start_service(SIGNUP_DESTINATION, allowed_countries="*")
    raw = {
        "uuid": "raw-1",
        "event": "signed up",
        "distinct_id": "d",
        "properties": {"$set": {"phone": "(415) 555-2671", "name": "Raw"}},
    }
    segment = {
        "type": "track",
        "event": "signed up",
        "userId": "u",
        "messageId": "seg-1",
        "context": {"traits": {"phone": "+447911123456", "name": "Seg"}},
    }
    for payload in (raw, segment):
        assert (
            service.post_events(payload).json()["results"][0]["deliveries"][0]["decision"]
            == "queued"
        )
    requests = fake_twilio.wait_for_requests(2)
    assert sorted((r.form["To"], r.form["Body"]) for r in requests) == [
        ("+14155552671", "Welcome Raw!"),
        ("+447911123456", "Welcome Seg!"),
    ]


def test_batch_answers_each_event(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION)
    batch = [posthog_webhook(uuid=f"b-{i}", phone=f"+1415555267{i}") for i in range(3)]
    batch.append(posthog_webhook(uuid="other", event="page viewed"))
    body = service.post_events(batch).json()
    assert body["accepted"] == 4
    assert [len(r["deliveries"]) for r in body["results"]] == [1, 1, 1, 0]
    assert len(fake_twilio.wait_for_requests(3)) == 3


def test_events_absent_means_every_event(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - {id: everything, body: "{{ event.event }}", from: "+15005550006"}
  - {id: only-signups, events: [signed up], body: "signup", from: "+15005550006"}
"""
    )
    decisions = service.post_events(posthog_webhook(event="anything")).json()
    assert [d["destination"] for d in decisions["results"][0]["deliveries"]] == ["everything"]
    decisions = service.post_events(posthog_webhook(uuid="u2")).json()
    assert [d["destination"] for d in decisions["results"][0]["deliveries"]] == [
        "everything",
        "only-signups",
    ]
    assert len(fake_twilio.wait_for_requests(3)) == 3


def test_same_event_three_times_sends_once(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION)
    answers = [service.post_events(posthog_webhook()).json() for _ in range(3)]
    decisions = [a["results"][0]["deliveries"][0] for a in answers]
    assert [d["decision"] for d in decisions] == ["queued", "duplicate", "duplicate"]
    # A duplicate points at the delivery that did go out.
    assert {d["delivery_id"] for d in decisions} == {decisions[0]["delivery_id"]}
    fake_twilio.wait_for_requests(1)
    service.wait_for_status(decisions[0]["delivery_id"], "sent")
    assert len(fake_twilio.message_requests) == 1


def test_concurrent_duplicates_send_once(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: service.post_events(posthog_webhook()), range(50)))
    decisions = [a.json()["results"][0]["deliveries"][0]["decision"] for a in answers]
    assert decisions.count("queued") == 1 and decisions.count("duplicate") == 49
    fake_twilio.wait_for_requests(1)


def test_200_concurrent_events_one_recipient_one_request(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(THROTTLED_DESTINATION)

    def post(i: int) -> httpx.Response:
        return service.post_events(posthog_webhook(uuid=f"evt-{i}"))

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, range(200)))
    decisions = [a.json()["results"][0]["deliveries"][0]["decision"] for a in answers]
    assert decisions.count("queued") == 1
    assert decisions.count("throttled") == 199
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["To"] == "+14155552671"
    with service.admin() as admin:
        page = admin.get("/v1/deliveries", params={"status": "skipped", "limit": 500}).json()
    assert len(page["items"]) == 199 and {i["reason"] for i in page["items"]} == {"throttled"}
    assert len(fake_twilio.message_requests) == 1


def test_global_throttle_spans_destinations(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - {id: a, body: a, from: "+15005550006", throttle: {window: 1h, scope: global}}
  - {id: b, body: b, from: "+15005550006", throttle: {window: 1h, scope: global}}
  - {id: c, body: c, from: "+15005550006", throttle: {window: 1h}}
"""
    )
    deliveries = service.post_events(posthog_webhook()).json()["results"][0]["deliveries"]
    assert [d["decision"] for d in deliveries] == ["queued", "throttled", "queued"]
    fake_twilio.wait_for_requests(2)


def test_skip_reasons_are_recorded_not_sent(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - {id: ok, body: "fine", from: "+15005550006"}
  - {id: broken, body: "{{ event.properties.missing }}", from: "+15005550006"}
  - {id: long, body: "{{ 'x' * 1601 }}", from: "+15005550006"}
"""
    )
    bad_phone = service.post_events(posthog_webhook(uuid="p1", phone="12345")).json()
    assert {d["decision"] for d in bad_phone["results"][0]["deliveries"]} == {"invalid_recipient"}
    no_phone = service.post_events(posthog_webhook(uuid="p2", phone=None)).json()
    detail = no_phone["results"][0]["deliveries"][0]["detail"]
    assert "phone" in detail
    answer = service.post_events(posthog_webhook(uuid="p3")).json()
    by_destination = {d["destination"]: d for d in answer["results"][0]["deliveries"]}
    assert by_destination["ok"]["decision"] == "queued"
    assert by_destination["broken"]["decision"] == "render_error"
    assert "missing" in by_destination["broken"]["detail"]
    assert by_destination["long"]["decision"] == "body_too_long"
    fake_twilio.wait_for_requests(1)
    record = service.delivery(by_destination["broken"]["delivery_id"])
    assert (record["status"], record["reason"]) == ("skipped", "render_error")
    assert len(fake_twilio.message_requests) == 1


def test_template_injection_is_refused_and_event_data_stays_data(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        """
destinations:
  - {id: evil, events: [evil], body: "{{ ''.__class__.__mro__ }}", from: "+15005550006"}
  - {id: echo, events: [echo], body: "{{ event.properties.text }}", from: "+15005550006"}
"""
    )
    evil = service.post_events(posthog_webhook(uuid="e1", event="evil")).json()
    assert evil["results"][0]["deliveries"][0]["decision"] == "render_error"
    payload = "{{ ''.__class__.__mro__ }}"
    echo = service.post_events(
        posthog_webhook(uuid="e2", event="echo", properties={"text": payload})
    ).json()
    assert echo["results"][0]["deliveries"][0]["decision"] == "queued"
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == payload


def test_filters_decide_matching(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - id: pro-only
    body: pro
    from: "+15005550006"
    filters:
      - {key: plan, operator: exact, value: pro}
      - {key: name, type: person, operator: icontains, value: ad}
"""
    )
    matched = service.post_events(posthog_webhook(uuid="m1")).json()
    assert len(matched["results"][0]["deliveries"]) == 1
    unmatched = service.post_events(posthog_webhook(uuid="m2", properties={"plan": "free"})).json()
    assert unmatched["results"][0]["deliveries"] == []
    fake_twilio.wait_for_requests(1)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic x"}, 401)],
)
def test_ingest_requires_the_token(
    start_service: Start, headers: dict[str, str], status: int
) -> None:
    service = start_service(SIGNUP_DESTINATION)
    with httpx.Client(base_url=service.base_url) as client:
        response = client.post("/v1/events", json=posthog_webhook(), headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == "unauthorized"
    assert "ingest-secret" not in response.text


def test_ingest_auth_none_is_explicit(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION, ingest_auth="none", ingest_token=None)
    with httpx.Client(base_url=service.base_url) as client:
        assert client.post("/v1/events", json=posthog_webhook()).status_code == 202


def test_malformed_input_is_a_clear_422(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    with service.client() as client:
        not_json = client.post(
            "/v1/events", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 422
        assert not_json.json()["detail"][0]["field"] == "body"
        missing = client.post("/v1/events", json={"properties": {}})
        assert missing.status_code == 422
        assert missing.json() == {
            "error": "invalid_input",
            "detail": [{"field": "event", "problem": "Field required"}],
        }
        for body, problem in (([], "empty batch"), ("text", "expected a JSON object")):
            unusable = client.post("/v1/events", json=body)
            assert unusable.status_code == 422 and problem in unusable.text


def test_body_size_limit_is_413(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION, max_body_bytes=2048)
    big = posthog_webhook(properties={"blob": "x" * 4096})
    response = service.post_events(big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_batch_limit_is_configurable(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION, max_batch=2)
    response = service.post_events([posthog_webhook(uuid=str(i)) for i in range(3)])
    assert response.status_code == 422
    assert "over the limit of 2" in response.json()["detail"][0]["problem"]


def test_health_and_readiness(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    with httpx.Client(base_url=service.base_url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}


def test_admission_and_worker_survive_a_flushed_script_cache(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(SIGNUP_DESTINATION)
    assert service.post_events(posthog_webhook(uuid="a")).status_code == 202
    fake_twilio.wait_for_requests(1)
    redis_client.script_flush()  # as after a Redis restart
    answer = service.post_events(posthog_webhook(uuid="b")).json()
    [delivery] = answer["results"][0]["deliveries"]
    assert delivery["decision"] == "queued"
    fake_twilio.wait_for_requests(2)
    # The worker's own scripts (claim, then record the outcome) were reloaded too.
    assert service.wait_for_status(delivery["delivery_id"], "sent")["twilio_sid"]
    assert redis_client.xlen("smsdest:sends") == 0  # acknowledged


def test_redis_down_answers_503_with_retry_after(start_service: Start) -> None:
    # Nothing listens on port 1: every Redis call fails to connect.
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url="redis://127.0.0.1:1/0")
    response = service.post_events(posthog_webhook(uuid="while-down"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "storage is unavailable, retry later",
    }


def test_ingest_route_is_still_a_documented_fastapi_route(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION, run_worker=False)
    with httpx.Client(base_url=service.base_url) as client:
        assert "post" in client.get("/openapi.json").json()["paths"]["/v1/events"]
        assert client.get("/v1/events").status_code == 405  # other methods go to FastAPI


def test_a_batch_spanning_several_script_calls_keeps_order_and_dedupes_across_them(
    start_service: Start, redis_client: redis.Redis
) -> None:
    # 250 events: admitted by three script calls of at most 100; event 150 repeats event 20.
    uuids = [f"0190e4c6-0000-7000-8000-{i:012d}" for i in range(250)]
    uuids[150] = uuids[20]
    batch = [posthog_webhook(uuid=u, phone=f"+1415555{i:04d}") for i, u in enumerate(uuids)]
    # 250 new numbers of one block: the velocity guard would refuse most (its own tests).
    service = start_service(SIGNUP_DESTINATION, run_worker=False, velocity_per_block=0)

    results = service.post_events(batch).json()["results"]

    assert [r["event_uuid"] for r in results] == uuids
    decisions = [r["deliveries"][0]["decision"] for r in results]
    assert decisions.count("queued") == 249 and decisions[150] == "duplicate"
    first = results[20]["deliveries"][0]["delivery_id"]
    assert results[150]["deliveries"][0]["delivery_id"] == first
    assert redis_client.xlen("smsdest:sends") == 249
