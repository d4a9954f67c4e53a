"""What processes cost while they run: CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of `pid` in MiB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command name (which may hold spaces) start at index 2.
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """CPU time all cores have spent busy so far (not idle, not iowait), and how much of
    it went to interrupts (irq + softirq: loopback TCP is largely softirq work)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    idle, interrupts = fields[3] + fields[4], fields[5] + fields[6]
    return (sum(fields[:8]) - idle) / _TICKS, interrupts / _TICKS


@dataclass
class CpuWindow:
    """Average CPU use (% of one core) of named processes over a stretch of time, and of
    the whole machine (100 per busy core), to see what else was running."""

    pids: dict[str, int]
    percent: dict[str, float] = field(default_factory=dict)
    machine_percent: float = 0.0
    interrupts_percent: float = 0.0


@contextlib.contextmanager
def cpu_window(pids: dict[str, int]) -> Iterator[CpuWindow]:
    """Measure the CPU each named pid (and this process) uses inside the `with` block."""
    if os.getpid() not in pids.values():
        pids = {**pids, "bench.run": os.getpid()}
    window = CpuWindow(dict(pids))
    start = time.monotonic()
    busy_before, interrupts_before = machine_busy_seconds()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield window
    elapsed = max(time.monotonic() - start, 1e-9)
    for name, pid in pids.items():
        window.percent[name] = round(100 * (cpu_seconds(pid) - before[name]) / elapsed, 1)
    busy, interrupts = machine_busy_seconds()
    window.machine_percent = 100 * (busy - busy_before) / elapsed
    window.interrupts_percent = round(100 * (interrupts - interrupts_before) / elapsed, 1)


class RssSampler:
    """Samples VmRSS of some pids every `interval` seconds on a thread; keeps each peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1) -> None:
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            for name, pid in self._pids.items():
                self.peak_mb[name] = max(self.peak_mb[name], rss_mb(pid))


def machine_percent_over(seconds: float) -> float:
    """How busy the machine is over the next `seconds` (100 per busy core)."""
    before, _ = machine_busy_seconds()
    time.sleep(seconds)
    after, _ = machine_busy_seconds()
    return 100 * (after - before) / seconds
