"""A capped sample of the raw events this process received, for the console's tester.

In memory only (the events hold personal data: nothing of them is written to Redis, and
a restart forgets them) and per process. Ingest pays one clock read per request; at most
one event per `interval_s` is kept (serialized then, so a batch costs one dump, not one
per event), the newest `capacity` of them, within `max_bytes` in all.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass

import orjson

from app.pipeline.events import Event

MAX_BYTES = 8 * 1024 * 1024
INTERVAL_S = 0.01


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One sampled event: a number to pick it by, when it came, and its JSON (in PostHog's
    webhook shape, which the tester and ingest accept)."""

    number: int
    received_at: float  # epoch seconds
    name: str
    uuid: str | None
    json: bytes


class RecentEvents:
    """The newest sampled events, newest last."""

    def __init__(
        self, capacity: int, max_bytes: int = MAX_BYTES, interval_s: float = INTERVAL_S
    ) -> None:
        self._events: deque[RecentEvent] = deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._interval = interval_s
        self._next_at = 0.0
        self._bytes = 0
        self._numbers = itertools.count(1)

    def add(self, events: list[Event]) -> None:
        """Keep the last of `events` unless one was kept less than `interval_s` ago."""
        now = time.monotonic()
        if now < self._next_at or not events:
            return
        self._next_at = now + self._interval
        event = events[-1]
        try:
            data = orjson.dumps(event.template_context())
        except TypeError:  # not JSON after all: not worth failing ingest for a sample
            return
        if len(data) > self._max_bytes:
            return
        self._events.append(
            RecentEvent(next(self._numbers), time.time(), event.name, event.uuid, data)
        )
        self._bytes += len(data)
        while len(self._events) > self._capacity or self._bytes > self._max_bytes:
            self._bytes -= len(self._events.popleft().json)

    def latest(self, limit: int) -> list[RecentEvent]:
        """The newest `limit` events, newest first."""
        return list(itertools.islice(reversed(self._events), limit))

    def find(self, number: int) -> RecentEvent | None:
        return next((e for e in self._events if e.number == number), None)
