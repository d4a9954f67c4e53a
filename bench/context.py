"""What every figure shares: the plan (how long, how many), the running processes, and
`measure`, one load run against one or more ingest servers."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

import redis

from app.store.keys import SEND_STREAM
from bench.loadgen import load
from bench.procs import Proc, Processes
from bench.redis_stats import CommandCounts
from bench.sampler import CpuWindow, cpu_window
from bench.wrk import LoadResult


@dataclass(frozen=True)
class Plan:
    """How much work each figure does; `quick` trades precision for time."""

    quick: bool
    runs: int
    duration_s: int  # whole seconds: wrk takes no fractions
    # Deliveries preloaded per dispatch run (0 ms and 150 ms fake): the goal's rate times
    # the duration, so that a worker meeting the goal is busy for the whole run.
    dispatch_n: int
    dispatch_slow_n: int
    connections: int = 32
    # Throughput is measured at saturation, as for single events: with 4 connections the
    # process sat idle a third of the time waiting on Redis (~13k events/s at 67% CPU).
    batch_connections: int = 16
    latency_rate: float = 500.0
    monitor_events: int = 200
    slow_latency_ms: float = 150.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick, runs=3, duration_s=1, dispatch_n=2_000, dispatch_slow_n=500)
        return cls(quick, runs=5, duration_s=10, dispatch_n=20_000, dispatch_slow_n=5_000)


@dataclass
class Bench:
    """The running benchmark: plan, processes, our Redis, the fake Twilio, services."""

    plan: Plan
    procs: Processes
    redis: redis.Redis
    redis_proc: Proc
    fake: Proc
    env: dict[str, str]  # the service's environment (1-destination file)
    servers: dict[str, Proc] = field(default_factory=dict)  # by role
    idle_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_runs: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)

    def record_cpu(
        self, phase: str, window: CpuWindow, extra: dict[str, float] | None = None
    ) -> None:
        """Keep one run's CPU use (% of one core, by process) for the phase's summary.

        `extra` adds processes measured otherwise (wrk, from its rusage); "interrupts" is
        the machine's irq + softirq time; "other processes" is what the machine spent
        beyond all of these.
        """
        percent = {**window.percent, **(extra or {}), "interrupts": window.interrupts_percent}
        others = window.machine_percent - sum(percent.values())
        self.cpu_runs[phase].append({**percent, "other processes": round(max(others, 0.0), 1)})

    def cpu_summary(self) -> dict[str, dict[str, float]]:
        """Median CPU % per process per phase."""
        return {
            phase: {
                name: round(statistics.median(run.get(name, 0.0) for run in runs), 1)
                for name in runs[0]
            }
            for phase, runs in self.cpu_runs.items()
        }


@dataclass(frozen=True)
class Measurement:
    """One load run: each target's result, what Redis executed, what got queued."""

    loads: list[LoadResult]
    commands: CommandCounts
    queued: int

    @property
    def req_per_s(self) -> float:
        return sum(result.req_per_s for result in self.loads)

    @property
    def failures(self) -> int:
        return sum(result.failures for result in self.loads)


def measure(
    bench: Bench, phase: str, targets: list[Proc], events_per_request: int = 1
) -> Measurement:
    """Flush Redis, load every target at once for the plan's duration, count the cost.

    The plan's connections are split evenly between the targets.
    """
    plan = bench.plan
    connections = plan.connections if events_per_request == 1 else plan.batch_connections
    bench.redis.flushdb()
    before = CommandCounts.read(bench.redis)
    # Every process of the benchmark's, the idle ones too: "other processes" is then only
    # what runs outside the benchmark (an idle server that did work would show by name).
    watched = {proc.name: proc.pid for proc in bench.procs.running}
    with cpu_window(watched) as window:
        urls = [proc.url + "/v1/events" for proc in targets]
        loads = load(urls, events_per_request, connections // len(targets), plan.duration_s)
    time.sleep(0.2)  # answers still in flight when the load stopped
    commands = CommandCounts.read(bench.redis).since(before)
    generator_cpu = sum(result.cpu_s for result in loads) / plan.duration_s
    bench.record_cpu(phase, window, {"wrk": round(100 * generator_cpu, 1)})
    return Measurement(loads, commands, bench.redis.xlen(SEND_STREAM))
