"""The benchmark's destinations files, generated into the run's work folder."""

from __future__ import annotations

from pathlib import Path

import yaml

BENCH_EVENT = "bench"

# The one destination every benchmark event matches, written like the README's example
# (what users run): an event filter and a person filter, a throttle, a template using
# `| default(...)` (so it renders through Jinja). Every event goes to another number, so
# the throttle is checked and claimed but never holds one back: every event is queued.
# The body ends with the event uuid, which keys the fake Twilio's arrival times.
MATCHING = {
    "id": "bench-sms",
    "name": "Benchmark text",
    "events": [BENCH_EVENT],
    "filters": [
        {"key": "plan", "type": "event", "operator": "is_not", "value": ["internal", "test"]},
        {"key": "phone", "type": "person", "operator": "is_set"},
    ],
    "to": "{{ person.properties.phone }}",
    "body": "Hi {{ person.properties.first_name | default('there') }}, welcome aboard! "
    "Event {{ event.uuid }}",
    "from": "+15005550006",
    "throttle": {"window": "1d", "scope": "destination"},
    "on_overflow": "reject",
}

# Pacing is on, as for users; the sender is declared far faster than the machine can send,
# so the figures measure what pacing costs (its reservations), never its waits.
SENDERS = {"+15005550006": {"rate": 10_000}}

# The 1,000-destination file: besides the matching one, OTHER_EVENTS destinations listen
# to other event names and FILTERED ones listen to `bench` behind a filter that fails.
OTHER_EVENTS = 900
FILTERED = 99


def uuid_of_body(body: str) -> str:
    """The event uuid a MATCHING body was rendered from (its last word)."""
    return body.rsplit(" ", 1)[-1]


def _decoy(index: int, *, filtered: bool) -> dict[str, object]:
    decoy: dict[str, object] = {
        "id": f"decoy-{index}",
        "events": [BENCH_EVENT] if filtered else [f"other event {index}"],
        "body": "Decoy {{ event.uuid }}",
        "from": "+15005550006",
    }
    if filtered:
        decoy["filters"] = [
            {"key": "plan", "type": "event", "operator": "exact", "value": f"plan-{index}"}
        ]
    return decoy


def write_destinations(folder: Path) -> tuple[Path, Path]:
    """Write the 1-destination and the 1,000-destination files; return both paths."""
    single = folder / "destinations-1.yaml"
    single.write_text(
        yaml.safe_dump({"senders": SENDERS, "destinations": [MATCHING]}, sort_keys=False)
    )
    decoys = [_decoy(i, filtered=False) for i in range(OTHER_EVENTS)]
    decoys += [_decoy(OTHER_EVENTS + i, filtered=True) for i in range(FILTERED)]
    many = folder / "destinations-1000.yaml"
    many.write_text(
        yaml.safe_dump({"senders": SENDERS, "destinations": [*decoys, MATCHING]}, sort_keys=False)
    )
    return single, many
