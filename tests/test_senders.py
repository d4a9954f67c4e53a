"""Every sender's real payloads end to end, and batches judged event by event."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.conftest import RunningService, posthog_webhook, sender_payload
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

FIRST_IDENTIFY = """
destinations:
  - id: hello
    events: [$identify]
    filters: [{key: phone, type: person, operator: is_set}]
    body: "Hi {{ person.properties.firstName | default(person.properties.first_name) }}!"
    from: "+15005550006"
  - id: order
    events: [Order Completed]
    body: "Order {{ event.properties.order_id }}: {{ event.properties.total }} USD"
    from: "+15005550006"
  - id: pricing
    events: [$pageview]
    filters: [{key: name, operator: exact, value: Pricing}]
    to: "+14155552671"
    body: "Someone is on {{ event.properties.name }}"
    from: "+15005550006"
  - id: big-account
    events: [$groupidentify]
    filters: [{key: plan, type: group, group: group, operator: exact, value: enterprise}]
    to: "{{ person.properties.phone }}"
    body: "{{ groups.group.properties.name }} joined"
    from: "+15005550006"
"""


def test_segment_batched_webhook_every_call_type(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(FIRST_IDENTIFY)
    names = ["track", "identify", "page", "screen", "group", "alias"]
    response = service.post_events([sender_payload(f"segment_{name}") for name in names])
    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] == 6 and answer["rejected"] == []
    assert [r["event"] for r in answer["results"]] == [
        "Order Completed",
        "$identify",
        "$pageview",
        "$screen",
        "$groupidentify",
        "$create_alias",
    ]
    decided = {d["destination"]: d["decision"] for r in answer["results"] for d in r["deliveries"]}
    assert decided == {"order": "queued", "hello": "queued", "pricing": "queued"} | {
        "big-account": "queued"
    }
    bodies = sorted(r.form["Body"] for r in fake_twilio.wait_for_requests(4))
    assert bodies == [
        "Acme Corp joined",
        "Hi Grace!",
        "Order o-77: 42.5 USD",
        "Someone is on Pricing",
    ]


def test_rudderstack_full_field_set(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - id: cart
    events: [Product Added]
    body: "{{ person.properties.first_name }}: {{ event.properties.name }} added"
    from: "+15005550006"
  - id: trial
    events: [$identify]
    filters: [{key: plan, type: person, operator: exact, value: trial}]
    to: "+14155552672"
    body: "Trial user {{ event.distinct_id }}"
    from: "+15005550006"
"""
    )
    answer = service.post_events(
        [sender_payload("rudderstack_track"), sender_payload("rudderstack_identify")]
    ).json()
    assert answer["accepted"] == 2 and answer["rejected"] == []
    assert [len(r["deliveries"]) for r in answer["results"]] == [1, 1]
    sent = sorted((r.form["To"], r.form["Body"]) for r in fake_twilio.wait_for_requests(2))
    assert sent == [
        ("+14155552671", "Ada: Red T-shirt added"),
        ("+14155552672", "Trial user 12345"),
    ]


def test_a_partly_valid_batch_admits_the_valid_events_once(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(
        """
destinations:
  - {id: welcome, body: "Hi {{ event.event }}", from: "+15005550006"}
"""
    )
    batch = [
        posthog_webhook(uuid="ok-1"),
        {"type": "track", "userId": "u"},  # no event name
        posthog_webhook(uuid="ok-2", phone="+14155552672"),
        "not an event",
        {"event": {"uuid": "x", "event": ""}},
        sender_payload("segment_identify"),
    ]
    first = service.post_events(batch)
    assert first.status_code == 202
    answer = first.json()
    assert answer["accepted"] == 3
    assert [r["index"] for r in answer["results"]] == [0, 2, 5]
    assert [r["deliveries"][0]["decision"] for r in answer["results"]] == ["queued"] * 3
    assert answer["rejected"] == [
        {"index": 1, "field": "event", "problem": "Field required"},
        {"index": 3, "field": "body", "problem": "expected a JSON object (an event)"},
        {
            "index": 4,
            "field": "event.event",
            "problem": "String should have at least 1 character",
        },
    ]
    # The sender retries the whole request: nothing is admitted twice.
    retry = service.post_events(batch).json()
    assert [r["deliveries"][0]["decision"] for r in retry["results"]] == ["duplicate"] * 3
    assert retry["rejected"] == answer["rejected"]
    assert len(fake_twilio.wait_for_requests(3)) == 3
    assert redis_client.xlen("smsdest:sends") <= 3


def test_posthog_webhook_with_person_null(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        """
destinations:
  - id: welcome
    events: [signed up]
    body: "Hi {{ person.properties.first_name | default('there') }}, welcome!"
    from: "+15005550006"
"""
    )
    answer = service.post_events(sender_payload("posthog_webhook_person_null")).json()
    assert answer["results"][0]["deliveries"][0]["decision"] == "queued"
    [request] = fake_twilio.wait_for_requests(1)
    # `$set` says first_name is null: not "None", and not $set_once's stale "Initial".
    assert (request.form["To"], request.form["Body"]) == ("+14155552671", "Hi there, welcome!")


def test_segment_trait_nulls_render_as_nothing(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        """
destinations:
  - id: named
    events: [$identify]
    body: "Hi {{ person.properties.firstName }} {{ person.properties.lastName }}!"
    from: "+15005550006"
  - id: defaulted
    events: [$identify]
    to: "{{ person.properties.mobile | default(person.properties.phone) }}"
    body: "{{ person.properties.lastName | default('Dear customer') }}"
    from: "+15005550006"
  - id: null-phone
    events: [$identify]
    to: "{{ person.properties.lastName }}"
    body: "never sent"
    from: "+15005550006"
  - id: null-time
    events: [$identify]
    send_at: "{{ person.properties.lastName }}"
    body: "never sent"
    from: "+15005550006"
"""
    )
    identify = sender_payload("segment_identify")
    identify["traits"]["mobile"] = None
    deliveries = service.post_events(identify).json()["results"][0]["deliveries"]
    decided = {d["destination"]: (d["decision"], d.get("detail")) for d in deliveries}
    assert decided == {
        "named": ("queued", None),
        "defaulted": ("queued", None),
        "null-phone": ("invalid_recipient", "to: recipient is empty"),
        "null-time": (
            "render_error",
            "send_at: rendered empty (a null or blank value), not an ISO 8601 time",
        ),
    }
    bodies = sorted(r.form["Body"] for r in fake_twilio.wait_for_requests(2))
    assert bodies == ["Dear customer", "Hi Grace !"]
