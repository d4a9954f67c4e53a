"""Dispatch figures: 0 (the fake Twilio alone), 3 and 4 (one worker draining a preloaded
queue, fake at 0 ms and 150 ms), 5 (202 → Twilio latency at a steady rate)."""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any

import httpx

from app.store.keys import SEND_STREAM
from bench import queue_gate
from bench.context import Bench
from bench.destinations import uuid_of_body
from bench.loadgen import open_loop
from bench.payloads import posthog_webhook, uuids
from bench.procs import INGEST_TOKEN, Proc, start_service, start_worker, wait_ready
from bench.report import Row
from bench.sampler import cpu_window
from bench.wrk import HERE, run_wrk, wrk_available

PRELOAD_BATCH = 1000
WARM_UP = 200  # messages a fresh worker sends before the dispatch figures count
DEFAULT_CONCURRENCY = "100 (default)"  # SMS_WORKER_CONCURRENCY's default (app/settings.py)


def fake_alone(bench: Bench) -> Row:
    """Figure 0: the fake Twilio's own capacity, so that it is never the bottleneck."""
    name = "fake Twilio alone, 0 ms (sanity: must not be the bottleneck)"
    if not wrk_available():
        return Row("0", name, float("nan"), "req/s", 4_000, True, detail="needs wrk")
    reset_fake(bench.fake, 0)
    url = f"{bench.fake.url}/2010-04-01/Accounts/{bench.env['TWILIO_ACCOUNT_SID']}/Messages.json"
    result = run_wrk(url, HERE / "wrk_fake.lua", bench.plan.connections, 1.0)
    detail = f"one 1 s wrk run, {bench.plan.connections} connections"
    return Row("0", name, result.req_per_s, "req/s", 4_000, True, [result.req_per_s], detail)


def reset_fake(fake: Proc, latency_ms: float) -> None:
    """Forget the fake's arrivals and set its answer delay."""
    fake.client.post("/reset", params={"latency_ms": latency_ms}).raise_for_status()


def fake_stats(fake: Proc, times: bool = False) -> dict[str, Any]:
    """The fake's count, first/last arrival and (optionally) every arrival by body."""
    response = fake.client.get("/stats", params={"times": int(times)})
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def wait_for_count(fake: Proc, count: int, timeout_s: float) -> int:
    """Poll the fake every 100 ms until it has `count` requests; return the last count."""
    deadline = time.monotonic() + timeout_s
    seen = int(fake_stats(fake)["count"])
    while seen < count and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = int(fake_stats(fake)["count"])
    return seen


def preload(bench: Bench, n: int) -> int:
    """Queue `n` deliveries through the ingest-only service, in batches; return XLEN."""
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    ids = uuids()
    service = bench.servers["service"]
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        for start in range(0, n, PRELOAD_BATCH):
            size = min(PRELOAD_BATCH, n - start)
            batch = [posthog_webhook(uuid, start + i) for i, uuid in enumerate(islice(ids, size))]
            client.post("/v1/events", json=batch).raise_for_status()
    return int(bench.redis.xlen(SEND_STREAM))


@dataclass(frozen=True)
class DrainRun:
    """One dispatch run: the rate, how many arrived before the cap, release → last."""

    rate: float
    sent: int
    queued: int
    wall_s: float
    stuck: int  # entries the worker read and never acknowledged


def drain_once(bench: Bench, n: int, latency_ms: float, *, record: bool = True) -> DrainRun:
    """Preload `n` behind the gate, release them to the running worker, time the fake.

    Bounded: stops at `n` arrivals or `duration_s` after the first, whichever is first.
    """
    reset_fake(bench.fake, latency_ms)
    queued = preload(bench, n)
    released = time.monotonic()
    queue_gate.release(bench.redis)
    worker = bench.servers["worker"]
    wait_for_count(bench.fake, 1, 60)
    watched = {"worker": worker.pid, "redis": bench.redis_proc.pid, "fake": bench.fake.pid}
    with cpu_window(watched) as window:
        wait_for_count(bench.fake, queued, bench.plan.duration_s)
    stats = fake_stats(bench.fake)
    wall = time.monotonic() - released
    queue_gate.hold(bench.redis)
    stuck = queue_gate.empty(bench.redis)
    if record:
        bench.record_cpu(f"dispatch, fake {latency_ms:g} ms", window)
    spread = (stats["last"] or 0) - (stats["first"] or 0)
    rate = (stats["count"] - 1) / spread if spread > 0 else float("nan")
    return DrainRun(rate, stats["count"], queued, wall, stuck)


def dispatch(bench: Bench) -> list[Row]:
    """Figures 3 and 4: one `smsdest worker` draining preloaded deliveries, fake at 0 ms
    then at the plan's slow latency (the same worker process for both)."""
    plan = bench.plan
    bench.redis.flushdb()
    queue_gate.hold(bench.redis)
    bench.servers["worker"] = start_worker(bench.procs, "worker", bench.env)
    try:
        # A fresh worker's first messages are slower (first calls, connections): not counted.
        drain_once(bench, WARM_UP, 0, record=False)
        fast = [drain_once(bench, plan.dispatch_n, 0) for _ in range(plan.runs)]
        slow_ms = plan.slow_latency_ms
        slow = [drain_once(bench, plan.dispatch_slow_n, slow_ms) for _ in range(plan.runs)]
    finally:
        bench.procs.stop(bench.servers.pop("worker"))
    return [
        _dispatch_row(bench, "3", fast, plan.dispatch_n, 0, 2_000),
        _dispatch_row(bench, "4", slow, plan.dispatch_slow_n, slow_ms, 500),
    ]


def _dispatch_row(
    bench: Bench, figure: str, runs: list[DrainRun], n: int, latency_ms: float, goal: float
) -> Row:
    concurrency = bench.env.get("SMS_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY)
    sent = statistics.median(run.sent for run in runs)
    _note_runs(bench, f"dispatch at {latency_ms:g} ms", {"stuck pending": [r.stuck for r in runs]})
    return Row(
        figure,
        f"dispatch, one worker, fake Twilio {latency_ms:g} ms (messages/s)",
        statistics.median(run.rate for run in runs),
        "msg/s",
        goal,
        True,
        [run.rate for run in runs],
        f"{n:,} preloaded per run, {sent:,.0f} sent before the {bench.plan.duration_s:g} s "
        f"cap (median); rate = arrivals at the fake, first to last; SMS_WORKER_CONCURRENCY "
        f"{concurrency}; release to cap {statistics.median(r.wall_s for r in runs):.1f} s",
    )


@dataclass(frozen=True)
class LatencyRun:
    """One steady-rate run: 202 → fake percentiles, and how the load went."""

    p50_ms: float
    p99_ms: float
    answer_p99_ms: float  # request due → 202 back
    sent: int
    accepted: int
    arrived: int
    stuck: int  # entries the worker read and never acknowledged
    lag_ms: float  # how far the generator fell behind its schedule


def latency(bench: Bench) -> list[Row]:
    """Figure 5: 202 → request at the fake, at a steady rate, `smsdest serve` with worker."""
    reset_fake(bench.fake, 0)
    bench.redis.flushdb()
    queue_gate.hold(bench.redis)
    service = start_service(bench.procs, "service-worker", bench.env, worker=True)
    wait_ready(service)
    try:
        runs = [_latency_run(bench, service) for _ in range(bench.plan.runs)]
    finally:
        bench.procs.stop(service)
    plan = bench.plan
    trouble = {
        "failed (no 202 in time)": [r.sent - r.accepted for r in runs],
        f"accepted but not at the fake {plan.duration_s:g} s later (∞)": [
            r.accepted - r.arrived for r in runs
        ],
        "stuck pending": [r.stuck for r in runs],
        "generator lag ms (> 50)": [round(r.lag_ms) if r.lag_ms > 50 else 0 for r in runs],
    }
    _note_runs(bench, f"latency, of {runs[0].sent} events per run", trouble)
    p50s, p99s = [run.p50_ms for run in runs], [run.p99_ms for run in runs]
    detail = (
        f"{plan.latency_rate:g} events/s open loop (Python asyncio + httpx) for "
        f"{plan.duration_s:g} s; median run: {statistics.median(r.sent for r in runs):,.0f} "
        f"sent, {statistics.median(r.accepted for r in runs):,.0f} answered 202, "
        f"{statistics.median(r.arrived for r in runs):,.0f} reached the fake; request → 202 "
        f"p99 {statistics.median(r.answer_p99_ms for r in runs):,.0f} ms"
    )
    name = "202 → fake Twilio latency, {} (serve with its worker)"
    return [
        Row("5a", name.format("p50"), statistics.median(p50s), "ms", 5, False, p50s, detail),
        Row("5b", name.format("p99"), statistics.median(p99s), "ms", 50, False, p99s, detail),
    ]


def _latency_run(bench: Bench, service: Proc) -> LatencyRun:
    """One bounded run; an accepted event that never reaches the fake counts as ∞."""
    plan = bench.plan
    reset_fake(bench.fake, 0)
    queue_gate.release(bench.redis)
    watched = {"service (API + worker)": service.pid, "redis": bench.redis_proc.pid}
    watched |= {"fake": bench.fake.pid, "load generator": os.getpid()}
    with cpu_window(watched) as window:
        result = open_loop(
            service.url + "/v1/events", plan.latency_rate, plan.duration_s, plan.duration_s
        )
    bench.record_cpu("latency, service with worker", window)
    wait_for_count(bench.fake, len(result.accepted_at), plan.duration_s)
    arrivals = fake_stats(bench.fake, times=True)["arrivals"]
    queue_gate.hold(bench.redis)  # what is still queued is not the next run's business
    stuck = queue_gate.empty(bench.redis)
    arrived_at = {uuid_of_body(body): at for body, at in arrivals.items()}
    deltas = sorted(
        (arrived_at[uuid] - accepted) * 1000 if uuid in arrived_at else math.inf
        for uuid, accepted in result.accepted_at.items()
    )
    return LatencyRun(
        percentile(deltas, 50),
        percentile(deltas, 99),
        percentile(sorted(result.answer_ms), 99),
        result.sent,
        len(result.accepted_at),
        sum(1 for delta in deltas if delta < math.inf),
        stuck,
        result.lag_s * 1000,
    )


def _note_runs(bench: Bench, phase: str, counts: dict[str, list[int]]) -> None:
    """One note for a figure's troubles, run by run (nothing when there were none)."""
    parts = [
        f"{what} {'/'.join(str(n) for n in per_run)}"
        for what, per_run in counts.items()
        if any(per_run)
    ]
    if parts:
        bench.notes.append(f"{phase}, run by run: " + "; ".join(parts))


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of an ascending list; NaN when empty."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]
