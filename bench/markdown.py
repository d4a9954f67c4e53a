"""bench/results/latest.md: the table, each figure's detail, CPU by process, and method."""

from __future__ import annotations

from typing import Any

from bench.report import Row, table

METHOD = """\
## How it is measured

- Everything runs on 127.0.0.1: a redis-server of the benchmark's own (no persistence,
  flushed before each ingest run), the fake Twilio (`bench/fake_twilio.py`, uvicorn +
  uvloop + httptools), the bare FastAPI app (`bench/bare_app.py`, served with the same
  `uvicorn.run` call as the service) and the service as a user runs it (`smsdest serve
  --no-worker`, `smsdest worker`, `smsdest serve`). The `smsdest serve` of figure 1b
  uses Redis database 1, the others 0: its worker sends only what it admitted itself
  (in one database it sent the other configurations' events while they were measured).
- Each figure is the median of the runs (per-run values in latest.json). Load is wrk,
  one thread, {connections} connections (batches: {batch_connections}), each request a
  new event uuid, recipients cycling over 1,000 numbers (`bench/wrk_events.lua`,
  `bench/wrk_batch.lua`). The configurations of figures 1, 7 and 8 run interleaved, run
  by run, so they share the same conditions.
- **1** the service's req/s over the bare app's, in the same runs.
- **2** req/s × 100 for 100-event JSON arrays.
- **3, 4** one `smsdest worker` runs through both figures, after a warm-up of 200
  messages that is not counted (a fresh worker's first messages are slower). Each run
  queues N deliveries (through `serve --no-worker`) while the workers' consumer group is
  held at an id far in the future (`bench/queue_gate.py`: the worker reads nothing),
  then sets the group back to 0: the worker gets them all at once. The rate is
  (arrivals − 1) / (last − first arrival at the fake), counted until N arrived or the
  run's duration after the first arrival, whichever comes first; then the queue is held
  and emptied for the next run.
- **5** a Python asyncio + httpx open-loop generator makes {rate:g} events/s due on
  schedule, whatever the answers do, sent over 64 keep-alive connections (one httpx
  client each), to `smsdest serve` (API + its embedded worker). The latency of an event
  is the fake's `time.time()` at arrival minus the generator's `time.time()` when the
  202 came back, matched by the event uuid at the end of the message body. An accepted
  event still missing one run duration after the last answer counts as ∞; a request
  unanswered one run duration after the schedule ends counts as failed. Negative values
  are possible: the worker can reach Twilio before the 202 is read.
- **6** counted two ways. The figure: 200 events sent one by one while MONITOR runs;
  commands sent by clients (each is one round trip unless pipelined with others) are
  divided by the events accepted (queued). Commands the admission Lua script runs inside
  Redis are listed apart: they cost no round trip. The detail also gives `INFO stats`
  total_commands_processed and `INFO commandstats` evalsha/eval over the wrk runs of
  figure 1, per queued event: total_commands_processed counts the Lua-internal commands too.
- **7** 1,000 destinations, 1 matching: see the row's detail for the mix.
- **8** there is no load balancer: two `serve --no-worker` processes on two ports, one wrk
  per port at the same time with half the connections each; their req/s are added.
- **9** VmRSS from /proc/<pid>/status every 100 ms during the runs of figures 1, 7, 8
  (peak), and once right after start (idle).
- **CPU** per process from /proc/<pid>/stat over each run (wrk from its rusage), every
  process of the benchmark's listed, idle or not; "other processes" is the machine's busy
  time (/proc/stat) beyond them: when it is high, something else ran on the machine and
  the figures are suspect.
- **quick** uses runs of 1 s: wrk takes whole seconds, and 8 load configurations × 3 runs
  × 3 s would already be 72 s of load, over the minute quick is for.
"""


def _details(rows: list[Row]) -> str:
    lines = ["## Details", ""]
    for row in rows:
        runs = ", ".join(f"{value:,.2f}" for value in row.runs)
        lines.append(f"- **{row.figure}** {row.detail} — runs: {runs}")
    return "\n".join(lines)


def _cpu(cpu: dict[str, dict[str, float]]) -> str:
    lines = [
        "## CPU by process (median, % of one core; the machine has the cores above)",
        "",
    ]
    for phase, by_process in cpu.items():
        parts = ", ".join(f"{name} {pct:.0f}%" for name, pct in by_process.items())
        lines.append(f"- {phase}: {parts}")
    return "\n".join(lines)


def _environment(document: dict[str, Any]) -> str:
    host = document["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    return (
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['ram_gib']} GiB RAM, "
        f"kernel {host['kernel']}.\n\nVersions: {versions}."
    )


def render(document: dict[str, Any], rows: list[Row]) -> str:
    """The whole Markdown report."""
    plan = document["plan"]
    title = (
        f"# smsdest benchmark ({document['mode']}: {plan['runs']} runs of "
        f"{plan['duration_s']:g} s, {document['elapsed_s']:.0f} s in all) — {document['when']}"
    )
    notes = "\n".join(f"- {note}" for note in document["notes"]) or "- none"
    method = METHOD.format(
        connections=plan["connections"],
        batch_connections=plan["batch_connections"],
        rate=plan["latency_rate"],
    )
    sections = [
        title,
        _environment(document),
        table(rows),
        _details(rows),
        _cpu(document["cpu_percent"]),
        f"## Notes\n\n{notes}",
        method,
    ]
    return "\n\n".join(sections) + "\n"
