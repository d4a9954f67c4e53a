"""Python load generators: the open-loop latency probe, and wrk's fallback.

Both are bounded: a fixed number of requests (or a deadline) and a timeout on each.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext, create_default_context
from typing import Any

import httpx
import orjson
import uvloop

from bench.payloads import posthog_webhook, uuids
from bench.procs import INGEST_TOKEN
from bench.wrk import (
    BATCH_SCRIPT,
    EVENTS_SCRIPT,
    LoadResult,
    finish_wrk,
    start_wrk,
    wrk_available,
)

_AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
_JSON = {"Content-Type": "application/json"}

# httpcore tries `import sniffio` on every request; when sniffio is not installed each
# failing import searches sys.path again (about 0.5 ms of CPU). None in sys.modules makes
# it fail at once. This only changes the benchmark's own load generator.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass
class _Scheduled:
    """One event of the open loop: its uuid, body, and when it fell due (time.time())."""

    uuid: str
    body: bytes
    due: float = 0.0


@dataclass
class OpenLoopResult:
    """When each accepted event got its 202 (time.time(), by uuid), and what failed."""

    accepted_at: dict[str, float] = field(default_factory=dict)
    answer_ms: list[float] = field(default_factory=list)  # request due → 202
    sent: int = 0
    failed: int = 0  # sent but not answered 202 in time
    lag_s: float = 0.0  # how late the last request left compared to its schedule


async def _post(
    client: httpx.AsyncClient, url: str, event: _Scheduled, result: OpenLoopResult
) -> None:
    try:
        response = await client.post(url, content=event.body, headers=_JSON)
    except httpx.HTTPError:
        return  # counted with the other failures: sent but not accepted
    if response.status_code != 202:
        return
    answered = time.time()
    result.accepted_at[event.uuid] = answered
    result.answer_ms.append((answered - event.due) * 1000)


async def _connection(
    url: str, queue: asyncio.Queue[_Scheduled | None], ssl: SSLContext, result: OpenLoopResult
) -> None:
    """One keep-alive connection sending what is due, in order, until told to stop."""
    timeout = httpx.Timeout(10.0)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(headers=_AUTH, timeout=timeout, limits=limits, verify=ssl) as c:
        while (event := await queue.get()) is not None:
            await _post(c, url, event, result)


async def _open_loop(
    url: str, rate: float, duration_s: float, grace_s: float, connections: int
) -> OpenLoopResult:
    result = OpenLoopResult()
    events = [
        _Scheduled(uuid, orjson.dumps(posthog_webhook(uuid, n)))
        for n, uuid in zip(range(int(rate * duration_s)), uuids(), strict=False)
    ]
    queue: asyncio.Queue[_Scheduled | None] = asyncio.Queue()
    ssl = create_default_context()  # once: every client would load the CA bundle again
    senders = [
        asyncio.create_task(_connection(url, queue, ssl, result)) for _ in range(connections)
    ]
    start = time.monotonic()
    for n, event in enumerate(events):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event.due = time.time()
        queue.put_nowait(event)
    result.lag_s = max(0.0, time.monotonic() - start - (len(events) - 1) / rate)
    result.sent = len(events)
    for _ in senders:
        queue.put_nowait(None)
    await asyncio.wait(senders, timeout=grace_s)
    for sender in senders:
        sender.cancel()
    await asyncio.gather(*senders, return_exceptions=True)
    result.failed = result.sent - len(result.accepted_at)
    return result


def open_loop(
    url: str, rate: float, duration_s: float, grace_s: float, connections: int = 64
) -> OpenLoopResult:
    """POST `rate` events/s for `duration_s`, each due on schedule whatever the answers
    do; then wait at most `grace_s` for what is still due (the rest counts as failed).

    Due events queue for the first free of `connections` keep-alive connections (one
    httpx client each: httpcore's pool scans every connection for every queued request,
    which costs more than the requests at this rate). Bodies are built before the clock
    starts; the loop is uvloop's, as the service's.
    """
    return uvloop.run(_open_loop(url, rate, duration_s, grace_s, connections))


async def _closed_worker(
    client: httpx.AsyncClient,
    url: str,
    body: Callable[[], Any],
    deadline: float,
    latencies: list[float],
    failures: list[int],
) -> None:
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            response = await client.post(url, json=body())
            ok = response.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append((time.monotonic() - start) * 1000)
        else:
            failures.append(1)


async def _closed_loop(
    url: str, events_per_request: int, connections: int, duration_s: float
) -> LoadResult:
    ids = uuids()
    counter = iter(range(10**9))

    def body() -> Any:
        events = [posthog_webhook(next(ids), next(counter)) for _ in range(events_per_request)]
        return events[0] if events_per_request == 1 else events

    latencies: list[float] = []
    failures: list[int] = []
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(headers=_AUTH, timeout=5.0, limits=limits) as client:
        deadline = time.monotonic() + duration_s
        start = time.monotonic()
        workers = [
            _closed_worker(client, url, body, deadline, latencies, failures)
            for _ in range(connections)
        ]
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        req_per_s=len(latencies) / elapsed,
        p50_ms=cuts[49],
        p99_ms=cuts[98],
        non_2xx=len(failures),
    )


async def _closed_loops(
    urls: list[str], events_per_request: int, connections: int, duration_s: float
) -> list[LoadResult]:
    runs = [_closed_loop(url, events_per_request, connections, duration_s) for url in urls]
    return list(await asyncio.gather(*runs))


def load(
    urls: list[str], events_per_request: int, connections: int, duration_s: float
) -> list[LoadResult]:
    """Load every URL at once for `duration_s` (`connections` each): wrk, else Python.

    With wrk, `events_per_request` is 1 (wrk_events.lua) or BATCH_SIZE (wrk_batch.lua).
    The Python fallback is `connections` httpx clients POSTing back to back.
    """
    if wrk_available():
        script = EVENTS_SCRIPT if events_per_request == 1 else BATCH_SCRIPT
        started = [start_wrk(url, script, connections, duration_s) for url in urls]
        return [finish_wrk(popen, duration_s) for popen in started]
    return asyncio.run(_closed_loops(urls, events_per_request, connections, duration_s))
