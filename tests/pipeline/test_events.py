from __future__ import annotations

import pytest

from app.pipeline.events import InvalidPayload, parse_events
from tests.conftest import posthog_webhook


def test_posthog_webhook_body() -> None:
    payload = posthog_webhook()
    payload["groups"] = {"company": {"id": "acme", "properties": {"plan": "enterprise"}}}
    payload["project"] = {"id": 1, "name": "Web"}
    [event] = parse_events(payload, max_batch=10)
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
    [event] = parse_events(
        {
            "uuid": "u-1",
            "event": "purchase",
            "distinct_id": 42,
            "properties": {"amount": 10, "$set": {"phone": "+14155552671"}},
            "timestamp": "2026-11-23T10:00:00Z",
        },
        max_batch=10,
    )
    assert event.distinct_id == "42"
    assert event.person.properties == {"phone": "+14155552671"}


def test_raw_posthog_event_prefers_person_properties_field() -> None:
    [event] = parse_events(
        {
            "event": "x",
            "distinct_id": "d",
            "person_properties": {"phone": "1"},
            "properties": {"$set": {"phone": "2"}},
        },
        max_batch=10,
    )
    assert event.person.properties == {"phone": "1"}


def test_segment_track_call() -> None:
    [event] = parse_events(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-7",
            "anonymousId": "anon",
            "properties": {"total": 30},
            "context": {"traits": {"phone": "+14155552671"}},
            "messageId": "msg-1",
            "timestamp": "2026-11-23T10:00:00Z",
        },
        max_batch=10,
    )
    assert (event.name, event.uuid, event.distinct_id) == ("Order Completed", "msg-1", "u-7")
    assert event.person.properties["phone"] == "+14155552671"
    assert event.properties == {"total": 30}


def test_event_without_id_is_identified_by_its_content() -> None:
    body = {"event": "x", "distinct_id": "d", "properties": {"a": 1, "b": 2}}
    [first] = parse_events(body, max_batch=1)
    [second] = parse_events({"properties": {"b": 2, "a": 1}, "distinct_id": "d", "event": "x"}, 1)
    [other] = parse_events({**body, "properties": {"a": 2}}, max_batch=1)
    assert first.identity.startswith("sha256:")
    assert first.identity == second.identity
    assert first.identity != other.identity


def test_batch_mixes_shapes() -> None:
    events = parse_events(
        [posthog_webhook(), {"event": "y", "uuid": "u2"}, {"type": "track", "event": "z"}], 10
    )
    assert [e.name for e in events] == ["signed up", "y", "z"]
    assert len(parse_events({"batch": [{"event": "a"}, {"event": "b"}]}, 10)) == 2


def test_problems_name_the_field_and_index() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_events([{"event": "ok"}, {"event": {"uuid": "x"}}, 7, {"type": "identify"}], 10)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"[1].event.event", "[2]", "[3].type", "[3].event"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"properties": {}}, "event"),
        ({"event": ""}, "event"),
        ({"event": "x", "properties": []}, "properties"),
        ("a string", "body"),
        ([], "body"),
    ],
)
def test_single_event_problems(payload: object, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_events(payload, max_batch=10)
    assert caught.value.problems[0].field == field


def test_batch_limit() -> None:
    with pytest.raises(InvalidPayload, match="over the limit of 2"):
        parse_events([{"event": "a"}] * 3, max_batch=2)
