"""Run wrk against loopback URLs and read its report (requests/s, latency, errors)."""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import INGEST_TOKEN

HERE = Path(__file__).resolve().parent
EVENTS_SCRIPT = HERE / "wrk_events.lua"
BATCH_SCRIPT = HERE / "wrk_batch.lua"
BATCH_SIZE = 100  # events per request in wrk_batch.lua

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    """One load run: throughput, latency percentiles (ms) and failures."""

    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0
    cpu_s: float = 0.0  # CPU time the load generator itself used

    @property
    def failures(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_available() -> bool:
    """True when a `wrk` binary is on PATH."""
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    """wrk's own version line (it prints it with -v and exits 1)."""
    if not wrk_available():
        return "absent"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
    first_line = (out.stdout or out.stderr).splitlines()[0]
    return first_line.split(" Copyright")[0].removeprefix("wrk ").strip()


def start_wrk(url: str, script: Path, connections: int, duration_s: float) -> subprocess.Popen[str]:
    """Start one wrk (one thread) POSTing to `url`; it stops after `duration_s`."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
    argv += ["--timeout", "5s", "-s", str(script)]
    argv += ["-H", f"Authorization: Bearer {INGEST_TOKEN}", url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(popen: subprocess.Popen[str], duration_s: float) -> LoadResult:
    """Wait for wrk (bounded) and parse its report."""
    before = _children_cpu()
    out, _ = popen.communicate(timeout=duration_s + 30)
    if popen.returncode != 0:
        raise RuntimeError(f"wrk failed ({popen.returncode}): {out}")
    return parse_wrk(out, cpu_s=_children_cpu() - before)


def run_wrk(url: str, script: Path, connections: int, duration_s: float) -> LoadResult:
    """Start wrk, wait for it, parse its report."""
    return finish_wrk(start_wrk(url, script, connections, duration_s), duration_s)


def parse_wrk(text: str, cpu_s: float = 0.0) -> LoadResult:
    """Read wrk's `--latency` report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rate:
        raise RuntimeError(f"cannot read wrk's report:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return LoadResult(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1000,
        req_per_s=float(rate.group(1)),
        p50_ms=_percentile(text, "50%"),
        p99_ms=_percentile(text, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        cpu_s=cpu_s,
    )


def _percentile(text: str, label: str) -> float:
    found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
