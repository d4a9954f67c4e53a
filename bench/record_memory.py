"""Figure 10: Redis memory per delivery of the README's example destination, read from
Redis' own figures — sent ones (every event to another person) and skipped ones (every
event to the same person: all but the first throttled).

`python -m bench.record_memory [N]` measures it alone (own Redis, own `smsdest serve`);
`make bench` runs it as figures 10a and 10b; tests/test_record_memory.py asserts the bounds.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from app.store.keys import DELAYED_SENDS, SEND_STREAM
from bench.context import Bench
from bench.procs import (
    INGEST_TOKEN,
    Processes,
    service_env,
    start_module,
    start_redis,
    start_service,
    wait_ready,
)
from bench.report import Row

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DESTINATIONS = REPO / "destinations.example.yaml"  # the README's example
DELIVERIES = 10_000
BATCH = 500  # events per POST
SENT_GOAL = 1_000  # bytes of Redis memory per sent delivery, at most
SKIPPED_GOAL = 250  # … per skipped one


def example_event(uuid: str, phone: str) -> dict[str, Any]:
    """The README's example event (`user signed up`, plan pro, Ada) for `phone`."""
    return {
        "event": {
            "uuid": uuid,
            "event": "user signed up",
            "distinct_id": "user-1",
            "properties": {"plan": "pro"},
        },
        "person": {"id": "p-1", "properties": {"phone": phone, "first_name": "Ada"}},
    }


def _uuids(run: int) -> Iterator[str]:
    for n in itertools.count():
        yield f"0190e4c6-{run:04x}-7000-8000-{n:012x}"


def sent_events(n: int, run: int = 1) -> list[dict[str, Any]]:
    """`n` events, each to a different person: every one is sent."""
    uuids = _uuids(run)
    return [example_event(next(uuids), f"+1415{2_000_000 + i:07d}") for i in range(n)]


def skipped_events(n: int, run: int = 2) -> list[dict[str, Any]]:
    """`n` events to one person: the first is sent, the rest are throttled (1 d window)."""
    uuids = _uuids(run)
    return [example_event(next(uuids), "+14155552671") for _ in range(n)]


@dataclass(frozen=True)
class MemoryUse:
    """What `n` deliveries added to Redis, by Redis' two measures, per delivery."""

    n: int
    used_memory: float  # INFO memory used_memory (less the clients' buffers) delta / n
    keys: float  # MEMORY USAGE summed over every key, delta / n
    new_keys: float  # keys added / n

    def summary(self) -> str:
        return (
            f"{self.used_memory:,.0f} B/delivery by INFO used_memory, {self.keys:,.0f} B by "
            f"MEMORY USAGE summed over the keys, {self.new_keys:.2f} keys/delivery "
            f"({self.n:,} deliveries)"
        )


def _keys_bytes(client: redis.Redis) -> tuple[int, int]:
    total = count = 0
    for key in client.scan_iter(count=1000):
        total += client.memory_usage(key, samples=0) or 0
        count += 1
    return total, count


def _settled_used_memory(client: redis.Redis) -> int:
    """used_memory but for the clients' buffers, once it stops moving: a pipeline of
    admission calls leaves a client a query buffer of megabytes that Redis frees in its
    own time (its cron), which is no delivery's (one run in four read ~100 B/delivery
    more with it counted)."""
    last = -1
    for _ in range(20):
        time.sleep(0.2)
        memory = client.info("memory")
        used = int(memory["used_memory"]) - int(memory.get("mem_clients_normal", 0))
        if used == last:
            return used
        last = used
    return last


def wait_drained(client: redis.Redis, timeout_s: float = 120.0) -> None:
    """Until the worker has handled everything queued (sent entries leave the stream)."""
    deadline = time.monotonic() + timeout_s
    while client.xlen(SEND_STREAM) or client.zcard(DELAYED_SENDS):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not drain the send stream in time")
        time.sleep(0.1)


def measure(
    client: redis.Redis, post: Callable[[list[dict[str, Any]]], None], events: list[Any]
) -> MemoryUse:
    """Ingest `events` through `post` (batches), wait for the worker, read Redis' delta."""
    wait_drained(client)
    used_before = _settled_used_memory(client)
    keys_before, count_before = _keys_bytes(client)
    for start in range(0, len(events), BATCH):
        post(events[start : start + BATCH])
    wait_drained(client)
    used_after = _settled_used_memory(client)
    keys_after, count_after = _keys_bytes(client)
    n = len(events)
    return MemoryUse(
        n,
        (used_after - used_before) / n,
        (keys_after - keys_before) / n,
        (count_after - count_before) / n,
    )


def measure_both(
    client: redis.Redis, post: Callable[[list[dict[str, Any]]], None], n: int = DELIVERIES
) -> tuple[MemoryUse, MemoryUse]:
    """(sent, skipped) after a warm-up that creates the stream, its group and the indexes
    (their fixed cost is no delivery's)."""
    measure(client, post, sent_events(50, run=0xFFF0) + skipped_events(50, run=0xFFF1))
    return measure(client, post, sent_events(n)), measure(client, post, skipped_events(n))


def poster(url: str, token: str) -> tuple[httpx.Client, Callable[[list[Any]], None]]:
    """An HTTP client to the service and a `post` that sends one batch, answered 202."""
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def post(batch: list[Any]) -> None:
        client.post("/v1/events", json=batch).raise_for_status()

    return client, post


def figures(bench: Bench) -> list[Row]:
    """Figures 10a and 10b, measured with `smsdest serve` (its worker included) on the
    README's example destinations, Redis flushed first and to itself."""
    n = 2_000 if bench.plan.quick else DELIVERIES
    env = {**bench.env, "SMS_DESTINATIONS_FILE": str(EXAMPLE_DESTINATIONS)}
    bench.redis.flushdb()
    service = start_service(bench.procs, "service-memory", env, worker=True)
    try:
        wait_ready(service)
        http, post = poster(service.url, INGEST_TOKEN)
        with http:
            sent, skipped = measure_both(bench.redis, post, n)
    finally:
        bench.procs.stop(service)
    name = "Redis memory per {} delivery, README example (bytes)"
    return [
        _row("10a", name.format("sent"), sent, SENT_GOAL, "each event to another person"),
        _row(
            "10b",
            name.format("skipped"),
            skipped,
            SKIPPED_GOAL,
            "every event to one person: all but the first throttled",
        ),
    ]


def _row(figure: str, name: str, use: MemoryUse, goal: float, how: str) -> Row:
    """The larger of Redis' two measures: used_memory also holds the key tables, which
    grow by doubling, so over a small run it can read far under (or over) the keys' sum."""
    value = max(use.used_memory, use.keys)
    return Row(figure, name, value, "B", goal, False, [value], f"{how}; {use.summary()}")


def main() -> None:
    """Measure alone: a Redis and `smsdest serve` (with its worker) of our own."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DELIVERIES
    with tempfile.TemporaryDirectory() as tmp, Processes(Path(tmp)) as procs:
        redis_proc, client = start_redis(procs)
        fake = start_module(procs, "fake-twilio", "bench.fake_twilio")
        env = service_env(redis_proc.port, EXAMPLE_DESTINATIONS, fake.url)
        service = start_service(procs, "service", env, worker=True)
        wait_ready(service)
        http, post = poster(service.url, INGEST_TOKEN)
        with http:
            sent, skipped = measure_both(client, post, n)
        print(f"sent:    {sent.summary()} (goal ≤ {SENT_GOAL})")
        print(f"skipped: {skipped.summary()} (goal ≤ {SKIPPED_GOAL})")


if __name__ == "__main__":
    main()
