from __future__ import annotations

import pytest

from app.pipeline.events import Event, InvalidPayload, parse_event, parse_events
from tests.conftest import posthog_webhook, sender_payload


def one(payload: object) -> Event:
    parsed = parse_events(payload, max_batch=10)
    assert parsed.rejected == []
    [event] = parsed.events
    return event


def test_posthog_webhook_body() -> None:
    payload = posthog_webhook()
    payload["groups"] = {"company": {"id": "acme", "properties": {"plan": "enterprise"}}}
    payload["project"] = {"id": 1, "name": "Web"}
    event = one(payload)
    assert event.name == "signed up"
    assert event.uuid == "0190e4c6-0000-7000-8000-000000000001"
    assert event.identity == event.uuid
    assert event.person.properties["phone"] == "+14155552671"
    assert event.group_properties("company") == {"plan": "enterprise"}
    context = event.template_context()
    assert context["event"]["url"] == "https://posthog.example/events/1"
    assert context["project"]["name"] == "Web"
    assert context["person"]["name"] == "Ada"


def test_raw_posthog_event_takes_person_properties_from_set() -> None:
    event = one(
        {
            "uuid": "u-1",
            "event": "purchase",
            "distinct_id": 42,
            "properties": {"amount": 10, "$set": {"phone": "+14155552671"}},
            "timestamp": "2026-11-23T10:00:00Z",
        }
    )
    assert event.distinct_id == "42"
    assert event.person.properties == {"phone": "+14155552671"}


def test_raw_posthog_event_prefers_person_properties_field() -> None:
    event = one(
        {
            "event": "x",
            "distinct_id": "d",
            "person_properties": {"phone": "1"},
            "properties": {"$set": {"phone": "2"}},
        }
    )
    assert event.person.properties == {"phone": "1"}


def test_segment_track_call() -> None:
    event = one(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-7",
            "anonymousId": "anon",
            "properties": {"total": 30},
            "context": {"traits": {"phone": "+14155552671"}},
            "messageId": "msg-1",
            "timestamp": "2026-11-23T10:00:00Z",
        }
    )
    assert (event.name, event.uuid, event.distinct_id) == ("Order Completed", "msg-1", "u-7")
    assert event.person.properties["phone"] == "+14155552671"
    assert event.properties == {"total": 30}


def test_event_without_id_is_identified_by_its_content() -> None:
    body = {"event": "x", "distinct_id": "d", "properties": {"a": 1, "b": 2}}
    first = parse_event(body)
    second = parse_event({"properties": {"b": 2, "a": 1}, "distinct_id": "d", "event": "x"})
    other = parse_event({**body, "properties": {"a": 2}})
    assert first.identity.startswith("sha256:")
    assert first.identity == second.identity
    assert first.identity != other.identity


def test_batch_mixes_shapes() -> None:
    parsed = parse_events(
        [posthog_webhook(), {"event": "y", "uuid": "u2"}, {"type": "track", "event": "z"}], 10
    )
    assert [e.name for e in parsed.events] == ["signed up", "y", "z"]
    assert parsed.indexes == [0, 1, 2]
    assert len(parse_events({"batch": [{"event": "a"}, {"event": "b"}]}, 10).events) == 2


def test_a_batch_is_judged_event_by_event() -> None:
    parsed = parse_events(
        [{"event": "ok"}, {"event": {"uuid": "x"}}, 7, {"type": "identify"}, {"type": "nope"}], 10
    )
    assert [e.name for e in parsed.events] == ["ok", "$identify"]
    assert parsed.indexes == [0, 3]
    problems = {(r.index, p.field) for r in parsed.rejected for p in r.problems}
    assert problems == {(1, "event.event"), (2, "body"), (4, "type")}


def test_problems_per_event_are_capped() -> None:
    hostile = {"type": "track", **{f"k{i}": i for i in range(1000)}, "userId": [], "event": []}
    hostile.update(anonymousId={}, messageId=1, timestamp=2, context=3, properties=4, traits=5)
    hostile.update(name=6, category=7, groupId=[], previousId=[], originalTimestamp=8)
    with pytest.raises(InvalidPayload) as caught:
        parse_event(hostile)
    assert len(caught.value.problems) == 10


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"properties": {}}, "event"),
        ({"event": ""}, "event"),
        ({"event": "x", "properties": []}, "properties"),
        ({"type": "track", "userId": "u"}, "event"),
        ("a string", "body"),
        ([], "body"),
    ],
)
def test_unusable_bodies(payload: object, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_events(payload, max_batch=10)
    assert caught.value.problems[0].field == field


def test_batch_limit() -> None:
    with pytest.raises(InvalidPayload, match="over the limit of 2"):
        parse_events([{"event": "a"}] * 3, max_batch=2)


# --- every sender's real shapes (tests/fixtures/senders) ----------------------------------


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("segment_track", "Order Completed"),
        ("segment_identify", "$identify"),
        ("segment_page", "$pageview"),
        ("segment_screen", "$screen"),
        ("segment_group", "$groupidentify"),
        ("segment_alias", "$create_alias"),
        ("rudderstack_track", "Product Added"),
        ("rudderstack_identify", "$identify"),
    ],
)
def test_every_segment_and_rudderstack_call_type(fixture: str, name: str) -> None:
    payload = sender_payload(fixture)
    event = one(payload)
    assert event.name == name
    assert event.uuid == payload["messageId"] == event.identity
    assert event.timestamp == payload["timestamp"]
    # userId, else anonymousId (RudderStack sends "" for an anonymous user's userId).
    assert event.distinct_id == (str(payload["userId"]) or payload["anonymousId"])
    assert event.person.id == event.distinct_id


def test_identify_traits_top_level_and_in_context_are_person_properties() -> None:
    event = one(sender_payload("segment_identify"))
    assert event.person.properties["phone"] == "+14155552671"
    assert event.person.properties["address"]["city"] == "Arlington"
    assert event.person.properties["lastName"] is None
    both = one(
        {
            "type": "identify",
            "userId": "u",
            "traits": {"plan": "pro"},
            "context": {"traits": {"plan": "free", "phone": "+14155552671"}},
        }
    )
    # The call's own traits win over the context's copy.
    assert both.person.properties == {"plan": "pro", "phone": "+14155552671"}
    rudder = one(sender_payload("rudderstack_identify"))
    assert rudder.distinct_id == "12345"
    assert rudder.person.properties["first_name"] == "Ada"


def test_track_takes_person_properties_from_context_traits() -> None:
    event = one(sender_payload("rudderstack_track"))
    assert event.distinct_id == "5f093403-1457-4a2c-b4e4-c61ec3bacf56"
    assert event.properties == {"product_id": "p-1", "name": "Red T-shirt", "price": 19.99}
    assert event.person.properties["phone"] == "+14155552671"


def test_page_and_screen_name_are_event_properties() -> None:
    page = one(sender_payload("segment_page"))
    assert page.properties["name"] == "Pricing" and page.properties["category"] == "Docs"
    assert page.properties["url"] == "https://www.example.com/pricing"
    screen = one(sender_payload("segment_screen"))
    assert screen.properties == {"variation": "dark mode toggle", "name": "Settings"}
    assert screen.person.properties == {"phone": "+14155552671"}


def test_group_traits_are_the_groups_properties() -> None:
    event = one(sender_payload("segment_group"))
    assert event.group_properties("group") == {
        "name": "Acme Corp",
        "industry": "Manufacturing",
        "employees": 120,
        "plan": "enterprise",
        "total billed": 4200,
    }
    assert event.groups["group"]["key"] == "g-acme-01"
    assert event.properties["$group_key"] == "g-acme-01"
    # Not the person's: only the context's traits describe the person.
    assert event.person.properties == {"phone": "+14155552671"}


def test_alias_names_the_previous_id() -> None:
    event = one(sender_payload("segment_alias"))
    assert event.distinct_id == "u-4242"
    assert event.properties["alias"] == "6f1b9c2e-5d3a-4a7e-9b1c-2d4e6f8a0b1c"


def test_segment_batched_webhook_array() -> None:
    names = ["segment_track", "segment_identify", "segment_page", "segment_screen"]
    batch = [sender_payload(n) for n in [*names, "segment_group", "segment_alias"]]
    parsed = parse_events(batch, max_batch=10)
    assert parsed.rejected == []
    assert [e.name for e in parsed.events] == [
        "Order Completed",
        "$identify",
        "$pageview",
        "$screen",
        "$groupidentify",
        "$create_alias",
    ]


def test_null_fields_of_a_call_are_empty() -> None:
    event = one({"type": "track", "event": "x", "properties": None, "context": None})
    assert event.properties == {} and event.person.properties == {}


def test_posthog_webhook_with_person_null_takes_person_from_set() -> None:
    payload = sender_payload("posthog_webhook_person_null")
    event = one(payload)
    # $set_once, then $set over it: the same rule as the raw PostHog event.
    assert event.person.properties == {
        "phone": "+14155552671",
        "first_name": None,
        "$initial_referrer": "$direct",
    }
    assert event.person.id is None
    raw = one({"event": "signed up", "properties": payload["event"]["properties"]})
    assert raw.person.properties == event.person.properties
