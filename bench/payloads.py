"""The benchmark's events in Python, the same shape as wrk_events.lua sends."""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Iterator
from typing import Any

from bench.destinations import BENCH_EVENT

# Numbers the events go to: 8 area codes x 8 million, from a random start, one per event,
# so that the destination's throttle never holds one back (wrk_events.lua does the same).
AREA_CODES = (415, 212, 312, 646, 617, 206, 303, 512)
_PHONES = itertools.count(random.randrange(63_000_000))


def next_phone() -> str:
    """A number no other event of this run went to."""
    k = next(_PHONES) % 64_000_000
    return f"+1{AREA_CODES[k // 8_000_000]}{2_000_000 + k % 8_000_000:07d}"


def posthog_webhook(uuid: str, n: int) -> dict[str, Any]:
    """PostHog's HTTP-webhook body for event `bench`, each to another number."""
    return {
        "event": {
            "uuid": uuid,
            "event": BENCH_EVENT,
            "distinct_id": f"user-{n % 1000}",
            "properties": {"plan": "pro", "n": n},
            "timestamp": "2026-11-23T10:00:00Z",
        },
        "person": {
            "id": f"person-{n % 1000}",
            "properties": {"phone": next_phone(), "first_name": "Ada"},
        },
    }


def uuids() -> Iterator[str]:
    """Unique event uuids: a random prefix for this call, then a counter."""
    prefix = secrets.token_hex(4)
    for n in itertools.count(1):
        yield f"{prefix}-0000-4000-8000-{n:012x}"
