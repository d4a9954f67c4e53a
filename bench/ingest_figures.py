"""Ingest figures: 1 (vs bare FastAPI), 2 (batches), 6 (Redis commands per event),
7 (1,000 destinations), 8 (two processes), 9 (memory)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from app.store.keys import SEND_STREAM
from bench.context import Bench, Measurement, measure
from bench.destinations import FILTERED, OTHER_EVENTS
from bench.payloads import posthog_webhook, uuids
from bench.procs import INGEST_TOKEN
from bench.redis_stats import Monitor
from bench.report import Row
from bench.sampler import RssSampler
from bench.wrk import BATCH_SIZE


@dataclass
class IngestRuns:
    """Every single-event ingest run, by configuration, in the order they ran."""

    bare: list[Measurement] = field(default_factory=list)
    one: list[Measurement] = field(default_factory=list)  # service, 1 destination
    # `smsdest serve` with its in-process worker sending what it admits
    with_worker: list[Measurement] = field(default_factory=list)
    many: list[Measurement] = field(default_factory=list)  # service, 1,000 destinations
    two: list[Measurement] = field(default_factory=list)  # two service processes
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def _rate(runs: list[Measurement]) -> float:
    return statistics.median(m.req_per_s for m in runs)


def _p99(runs: list[Measurement]) -> float:
    return statistics.median(max(load.p99_ms for load in m.loads) for m in runs)


def run_ingest(bench: Bench) -> IngestRuns:
    """Interleave the five single-event configurations run by run (same conditions)."""
    servers = bench.servers
    runs = IngestRuns()
    services = {name: servers[name].pid for name in ("service", "service-1000", "service-b")}
    with RssSampler(services) as rss:
        for _ in range(bench.plan.runs):
            runs.bare.append(measure(bench, "bare app", [servers["bare"]]))
            runs.one.append(measure(bench, "service", [servers["service"]]))
            runs.with_worker.append(
                measure(bench, "serve with its worker", [servers["service-worker"]])
            )
            runs.many.append(
                measure(bench, "service, 1,000 destinations", [servers["service-1000"]])
            )
            pair = [servers["service"], servers["service-b"]]
            runs.two.append(measure(bench, "two service processes", pair))
    runs.peak_rss_mb = rss.peak_mb
    for name, group in vars(runs).items():
        if isinstance(group, list) and any(m.failures for m in group):
            bench.notes.append(f"{name}: {sum(m.failures for m in group)} failed requests")
    return runs


def _ratio_row(
    number: str,
    figure: str,
    top: list[Measurement],
    bottom: list[Measurement],
    goal: float,
    detail: str,
) -> Row:
    """A req/s ratio figure: the medians' ratio, and the ratio run by run."""
    return Row(
        number,
        figure,
        _rate(top) / _rate(bottom),
        "",
        goal,
        True,
        [a.req_per_s / b.req_per_s for a, b in zip(top, bottom, strict=True)],
        detail,
    )


def single_vs_bare(runs: IngestRuns) -> Row:
    """Figure 1: the ingest-only service's (`serve --no-worker`) single-event req/s as a
    share of the bare app's."""
    service, bare = _rate(runs.one), _rate(runs.bare)
    return _ratio_row(
        "1",
        "single-event ingest, `serve --no-worker` / bare FastAPI (req/s ratio)",
        runs.one,
        runs.bare,
        0.5,
        f"service {service:,.0f} req/s (p99 {_p99(runs.one):.0f} ms) vs bare "
        f"{bare:,.0f} req/s (p99 {_p99(runs.bare):.0f} ms)",
    )


def with_worker_vs_bare(runs: IngestRuns) -> Row:
    """Figure 1b: the same with `smsdest serve` as most users run it, its in-process
    worker sending every admitted event to the fake Twilio meanwhile. Reported; the issue
    sets no goal for it."""
    service, bare = _rate(runs.with_worker), _rate(runs.bare)
    return _ratio_row(
        "1b",
        "single-event ingest, `smsdest serve` with its worker / bare FastAPI (req/s ratio)",
        runs.with_worker,
        runs.bare,
        0.0,
        f"serve with worker {service:,.0f} req/s (p99 {_p99(runs.with_worker):.0f} ms) vs "
        f"bare {bare:,.0f} req/s; the worker sends meanwhile, on the same two cores; no goal",
    )


def many_destinations(runs: IngestRuns) -> Row:
    """Figure 7: 1,000 destinations (1 matching) against 1."""
    return _ratio_row(
        "7",
        "ingest with 1,000 destinations / with 1 (req/s ratio)",
        runs.many,
        runs.one,
        0.8,
        f"{_rate(runs.many):,.0f} vs {_rate(runs.one):,.0f} req/s; of the 1,000: 1 matches, "
        f"{OTHER_EVENTS} listen to other event names, {FILTERED} listen to `bench` behind a "
        "filter that fails",
    )


def two_processes(runs: IngestRuns, one_process_cpu: dict[str, float]) -> Row:
    """Figure 8: two service processes (wrk against each port, rates added) against one.

    The detail gives this machine's ceiling for the ratio. With one process, each request
    costs the service S% of a core per unit of rate and everything else on the machine
    (Redis, wrk, interrupts, the harness) O%; two processes sharing the two cores with all
    of that can at best reach 200 / (S + O) times the one-process rate.
    """
    service = one_process_cpu.get("service", 0.0)
    others = sum(v for k, v in one_process_cpu.items() if k != "service")
    ceiling = 200 / (service + others) if service else float("nan")
    return _ratio_row(
        "8",
        "two processes / one, ingest (req/s ratio)",
        runs.two,
        runs.one,
        1.7,
        f"{_rate(runs.two):,.0f} vs {_rate(runs.one):,.0f} req/s; no load balancer: one wrk "
        "per port at once, half the connections each, req/s added; ceiling on this machine "
        f"{ceiling:.2f} = 200 / ({service:.0f}% service + {others:.0f}% Redis, wrk, "
        "interrupts… of a core, one-process runs)",
    )


def memory(bench: Bench, runs: IngestRuns) -> list[Row]:
    """Figure 9: peak RSS of each service process under load, and idle after start."""
    return [
        _rss_row("9a", "peak RSS per service process under load", runs.peak_rss_mb, 150),
        _rss_row("9b", "RSS per service process, idle after start", bench.idle_rss_mb, 80),
    ]


def _rss_row(number: str, figure: str, by_process: dict[str, float], goal: float) -> Row:
    """The largest process's RSS against `goal`, every process's in the detail."""
    return Row(
        number,
        figure,
        max(by_process.values()),
        "MB",
        goal,
        False,
        list(by_process.values()),
        ", ".join(f"{name} {mb:.0f} MB" for name, mb in by_process.items()),
    )


def batch_ingest(bench: Bench) -> Row:
    """Figure 2: events/s with 100-event batches (JSON arrays)."""
    runs = [
        measure(bench, "service, 100-event batches", [bench.servers["service"]], BATCH_SIZE)
        for _ in range(bench.plan.runs)
    ]
    rates = [m.req_per_s * BATCH_SIZE for m in runs]
    return Row(
        "2",
        f"batch ingest, {BATCH_SIZE} events/request (events/s)",
        statistics.median(rates),
        "events/s",
        20_000,
        True,
        rates,
        f"{bench.plan.batch_connections} connections; p99 {_p99(runs):.0f} ms per request",
    )


def redis_commands(bench: Bench, runs: IngestRuns) -> Row:
    """Figure 6: Redis commands per accepted event on the ingest path."""
    monitored = _monitor_calibration(bench)
    per_event = [m.commands.total / m.queued for m in runs.one if m.queued]
    scripts = [
        (m.commands.calls.get("evalsha", 0) + m.commands.calls.get("eval", 0)) / m.queued
        for m in runs.one
        if m.queued
    ]
    client, lua, accepted = monitored
    breakdown = ", ".join(f"{name} {n / accepted:.2f}" for name, n in client.most_common())
    return Row(
        "6",
        "Redis round trips per accepted event (client commands, ingest path)",
        sum(client.values()) / accepted,
        "",
        2,
        False,
        [sum(client.values()) / accepted],
        f"client commands per event: {breakdown}; inside Lua "
        f"{sum(lua.values()) / accepted:.1f} more. INFO over the wrk runs: "
        f"{statistics.median(per_event):.1f} commands executed per event (Lua's included), "
        f"{statistics.median(scripts):.2f} EVALSHA/EVAL per event",
    )


def _monitor_calibration(bench: Bench) -> tuple[Counter[str], Counter[str], int]:
    """Send events one by one under MONITOR; count client and Lua commands per event."""
    service = bench.servers["service"]
    bench.redis.flushdb()
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    with (
        Monitor(bench.redis_proc.port) as monitor,
        httpx.Client(base_url=service.url, headers=headers, timeout=10) as client,
    ):
        for n, uuid in zip(range(bench.plan.monitor_events), uuids(), strict=False):
            client.post("/v1/events", json=posthog_webhook(uuid, n)).raise_for_status()
        time.sleep(0.3)
    accepted = bench.redis.xlen(SEND_STREAM)
    return monitor.client_commands, monitor.lua_commands, accepted
