"""The service's own events reach the destinations that listen to them, once per key."""

from __future__ import annotations

from pathlib import Path

import redis

from app.pipeline.events import Event, Person
from app.services import build_http_client, build_services
from app.services.reload import load_configured_destinations
from app.services.system_events import caused_by_system_event
from app.store import keys
from app.store.deliveries import Admission
from app.store.storage import open_store
from tests.conftest import service_settings, write_destinations

ON_CALL = """
destinations:
  - id: on-call
    events: [$sms_guard_triggered]
    to: "+14155552671"
    body: "Guard: {{ event.properties.guard }} on {{ event.properties.destination }}"
    from: "+15005550006"
"""


async def test_a_system_event_texts_its_listener_once_per_key(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = service_settings(write_destinations(tmp_path, ON_CALL))
    properties = {"guard": "velocity", "destination": "welcome"}
    async with open_store(settings) as store, build_http_client(settings) as http:
        services = build_services(settings, http, store, load_configured_destinations(settings))
        emit = services.system_events.emit
        decisions = []
        for key in ("welcome:hour-1", "welcome:hour-1", "welcome:hour-2"):
            outcome = await emit("$sms_guard_triggered", key, properties)
            decisions += [d.decision for d in outcome.deliveries]
        [first, *_] = (await emit("$sms_guard_triggered", "welcome:hour-3", properties)).deliveries
        record = await services.deliveries.get(first.delivery_id or "")
    assert decisions == ["queued", "duplicate", "queued"]
    assert record is not None
    assert record.body == "Guard: velocity on welcome"


def test_only_the_services_own_events_count_as_system_events() -> None:
    assert caused_by_system_event("$sms_destination_paused")
    assert caused_by_system_event("$sms_status")
    assert not caused_by_system_event("signed up")
    assert not caused_by_system_event("$pageview")


async def test_a_velocity_alarm_pages_once_and_never_for_a_system_event(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = service_settings(write_destinations(tmp_path, ON_CALL))
    refused = Admission("welcome", "blocked_velocity", "dl_x", "velocity: …", alarm="block:1")
    async with open_store(settings) as store, build_http_client(settings) as http:
        services = build_services(settings, http, store, load_configured_destinations(settings))
        events = services.system_events
        events.guard_tripped(refused, event_named("$sms_status"))  # a system event's: never
        await events.settled()
        assert redis_client.xlen(keys.SEND_STREAM) == 0
        for _ in range(3):  # an attack's refusals in one block and hour: one page
            events.guard_tripped(refused, event_named("signed up"))
        await events.settled()
        assert redis_client.xlen(keys.SEND_STREAM) == 1
        other = Admission("welcome", "blocked_velocity", "dl_y", "velocity: …", alarm="block:2")
        events.guard_tripped(other, event_named("signed up"))
        await events.settled()
        assert redis_client.xlen(keys.SEND_STREAM) == 2


def event_named(name: str) -> Event:
    return Event(
        name=name,
        uuid="u1",
        distinct_id="d1",
        properties={},
        timestamp=None,
        person=Person(id="p1"),
        identity="u1",
    )
