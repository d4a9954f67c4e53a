"""The benchmark's events in Python, the same shape as wrk_events.lua sends."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from typing import Any

from bench.destinations import BENCH_EVENT


def posthog_webhook(uuid: str, n: int) -> dict[str, Any]:
    """PostHog's HTTP-webhook body for event `bench`; recipients cycle over 1000 numbers."""
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
            "properties": {"phone": f"+1415555{n % 1000:04d}", "name": "Ada"},
        },
    }


def uuids() -> Iterator[str]:
    """Unique event uuids: a random prefix for this call, then a counter."""
    prefix = secrets.token_hex(4)
    for n in itertools.count(1):
        yield f"{prefix}-0000-4000-8000-{n:012x}"
