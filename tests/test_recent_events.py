"""The recent-events sample: bounded in count, bytes and rate; newest first; off at 0."""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.pipeline.events import parse_event
from app.services.recent import RecentEvents
from tests.conftest import SIGNUP_DESTINATION, RunningService, posthog_webhook


def _event(uuid: str, **extra: Any) -> Any:
    event = parse_event(posthog_webhook(uuid=uuid, **extra))
    return event


def test_keeps_the_newest_within_count_and_bytes() -> None:
    sample = RecentEvents(capacity=3, interval_s=0)
    for i in range(5):
        sample.add([_event(f"u{i}")])
    assert [e.uuid for e in sample.latest(10)] == ["u4", "u3", "u2"]
    kept = sample.latest(1)[0]
    assert orjson.loads(kept.json)["event"]["uuid"] == "u4"
    assert sample.find(kept.number) == kept and sample.find(1) is None
    small = RecentEvents(capacity=100, max_bytes=1500, interval_s=0)
    for i in range(5):
        small.add([_event(f"b{i}", properties={"pad": "x" * 400})])
    assert 1 <= len(small.latest(100)) <= 2  # ~600 bytes each: two fit in 1,500
    small.add([_event("huge", properties={"pad": "x" * 5000})])  # over the budget alone
    assert small.latest(1)[0].uuid != "huge"


def test_one_event_per_interval_and_per_batch() -> None:
    sample = RecentEvents(capacity=100, interval_s=0.2)
    sample.add([_event("a"), _event("b")])
    sample.add([_event("c")])
    assert [e.uuid for e in sample.latest(10)] == ["b"]
    time.sleep(0.25)
    sample.add([_event("d")])
    assert [e.uuid for e in sample.latest(10)] == ["d", "b"]


def test_the_service_samples_what_it_receives_and_not_when_turned_off(
    start_service: Any,
) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION, recent_events=0)
    assert service.post_events(posthog_webhook()).status_code == 202
    app: Any = service.server.config.app
    assert app.state.services.ingest.recent is None
    service.stop()
    service = start_service(SIGNUP_DESTINATION)
    assert (
        service.post_events(
            posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000c1")
        ).status_code
        == 202
    )
    app = service.server.config.app
    [kept] = app.state.services.ingest.recent.latest(10)
    assert kept.uuid == "0190e4c6-0000-7000-8000-0000000000c1" and kept.name == "signed up"
