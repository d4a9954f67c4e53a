"""The orchestrator: `python -m bench.run [--quick]` starts everything, runs every figure,
prints one table and writes bench/results/latest.{json,md}."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import dispatch_figures as dispatch
from bench import ingest_figures as ingest
from bench import record_memory
from bench.context import Bench, Plan
from bench.destinations import write_destinations
from bench.markdown import render
from bench.procs import (
    Processes,
    error_summary,
    service_env,
    start_module,
    start_redis,
    start_service,
    wait_ready,
)
from bench.report import Row, machine, now_iso, table, versions, write
from bench.sampler import machine_percent_over, rss_mb
from bench.wrk import wrk_available

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"  # every process's output, from the last run only


def fresh_folder(folder: Path) -> Path:
    """`folder`, emptied of the previous run's logs."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.log"):
        old.unlink()
    return folder


def start_servers(bench: Bench, many_destinations: Path) -> None:
    """The bare app, three ingest-only services and one `smsdest serve` with its worker;
    wait for all, note the ingest-only ones' idle RSS."""
    servers = bench.servers
    servers["bare"] = start_module(bench.procs, "bare", "bench.bare_app")
    servers["service"] = start_service(bench.procs, "service", bench.env)
    # Its worker consumes the send stream of the Redis database it uses: in the one the
    # others admit to, it sent every event of their runs too (half a core of "other
    # processes", worker and fake Twilio, in the ingest-only figures). A database of its
    # own: it sends what it admitted itself, and idles while the others are measured.
    own_db = bench.env["SMS_REDIS_URL"].removesuffix("/0") + "/1"
    worker_env = {**bench.env, "SMS_REDIS_URL": own_db}
    servers["service-worker"] = start_service(
        bench.procs, "service-worker", worker_env, worker=True
    )
    servers["service-b"] = start_service(bench.procs, "service-b", bench.env)
    many_env = {**bench.env, "SMS_DESTINATIONS_FILE": str(many_destinations)}
    servers["service-1000"] = start_service(bench.procs, "service-1000", many_env)
    for proc in servers.values():
        wait_ready(proc)
    time.sleep(0.5)  # let start-up settle before reading idle memory
    for name in ("service", "service-b", "service-1000"):
        bench.idle_rss_mb[name] = rss_mb(servers[name].pid)


def progress(started: float, what: str) -> None:
    """One line on stderr per step, with the time elapsed."""
    print(f"[{time.monotonic() - started:6.1f} s] {what}", file=sys.stderr, flush=True)


def run_figures(bench: Bench, started: float) -> list[Row]:
    """Every figure, in an order that reuses the running processes; rows sorted."""
    progress(started, "0: the fake Twilio alone")
    rows = [dispatch.fake_alone(bench)]
    progress(started, "1, 7, 8, 9: single-event ingest, five configurations interleaved")
    runs = ingest.run_ingest(bench)
    # Its worker would take part in every later figure: stopped once measured.
    bench.procs.stop(bench.servers.pop("service-worker"))
    rows += [ingest.single_vs_bare(runs), ingest.with_worker_vs_bare(runs)]
    rows += [ingest.many_destinations(runs)]
    rows += [ingest.two_processes(runs, bench.cpu_summary()["service"])]
    rows += ingest.memory(bench, runs)
    progress(started, "6: Redis commands under MONITOR")
    rows.append(ingest.redis_commands(bench, runs))
    progress(started, "2: batch ingest")
    rows.append(ingest.batch_ingest(bench))
    for name in ("bare", "service-b", "service-1000"):
        bench.procs.stop(bench.servers.pop(name))
    progress(started, f"3, 4: dispatch, fake 0 ms then {bench.plan.slow_latency_ms:g} ms")
    rows += dispatch.dispatch(bench)
    progress(started, "5: latency at a steady rate")
    rows += dispatch.latency(bench)
    progress(started, "10: Redis memory per delivery")
    rows += record_memory.figures(bench)
    progress(started, "done")
    return sorted(rows, key=lambda row: (len(row.figure.rstrip("ab")), row.figure))


@contextlib.contextmanager
def one_at_a_time(lock: Path, timeout_s: float = 1200.0) -> Iterator[None]:
    """Two benchmarks at once on one machine would measure each other: wait (bounded)
    for the one already running, saying so."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit("another benchmark is still running: giving up") from None
                print("another benchmark is running: waiting for it", file=sys.stderr)
                time.sleep(5)
        yield


def wait_for_quiet(limit: float = 25.0, timeout_s: float = 120.0) -> str | None:
    """Wait (bounded) until the machine is nearly idle; a note when it never was."""
    deadline = time.monotonic() + timeout_s
    busy = machine_percent_over(1.0)
    while busy > limit and time.monotonic() < deadline:
        print(f"the machine is busy ({busy:.0f}% of a core): waiting", file=sys.stderr)
        busy = machine_percent_over(5.0)
    return None if busy <= limit else f"the machine was busy at start ({busy:.0f}% of a core)"


def warn_about_others(bench: Bench, threshold: float = 20.0) -> None:
    """Note every phase in which processes outside the benchmark used the CPU."""
    for phase, by_process in bench.cpu_summary().items():
        others = by_process.get("other processes", 0.0)
        if others > threshold:
            bench.notes.append(
                f"{phase}: other processes on the machine used {others:.0f}% of a core "
                "(median): the figure may be disturbed"
            )


def main() -> None:
    """Run the benchmark (one at a time on this machine) and report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs of 1 s, under a minute")
    args = parser.parse_args()
    with one_at_a_time(RESULTS / ".lock"):
        run(Plan.make(args.quick))


def run(plan: Plan) -> None:
    """Start everything, run every figure, stop everything, write and print the report."""
    busy_note = wait_for_quiet()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="smsdest-bench-") as tmp,
        Processes(fresh_folder(LOGS)) as procs,
    ):
        single, many = write_destinations(Path(tmp))
        redis_proc, client = start_redis(procs)
        fake = start_module(procs, "fake-twilio", "bench.fake_twilio")
        wait_ready(fake, "/stats")
        env = service_env(redis_proc.port, single, fake.url)
        bench = Bench(plan, procs, client, redis_proc, fake, env)
        bench.notes += [busy_note] if busy_note else []
        if not wrk_available():
            bench.notes.append("wrk not found: load came from the Python asyncio+httpx fallback")
        progress(started, "starting the servers")
        start_servers(bench, many)
        rows = run_figures(bench, started)
    warn_about_others(bench)
    bench.notes += error_summary(LOGS)
    document = _document(bench, rows, time.monotonic() - started)
    json_path, md_path = write(RESULTS, document, render(document, rows))
    print(table(rows))
    for note in bench.notes:
        print(f"note: {note}")
    print(f"\n{json_path}\n{md_path}")


def _document(bench: Bench, rows: list[Row], elapsed_s: float) -> dict[str, Any]:
    plan = bench.plan
    return {
        "when": now_iso(),
        "mode": "quick" if plan.quick else "full",
        "plan": vars(plan),
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine(),
        "versions": versions(),
        "rows": [row.to_json() for row in rows],
        "cpu_percent": bench.cpu_summary(),
        "notes": bench.notes,
    }


if __name__ == "__main__":
    main()
