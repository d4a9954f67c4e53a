"""Issue 12, item 7: a Sentinel failover in the middle of a burst.

A master, its replica and three Sentinels on loopback (tests/reliability/sentinels.py);
`smsdest serve` and `smsdest worker` pointed at the Sentinels (redis+sentinel://). Events
go in steadily; the master is SIGKILLed mid-burst; once the Sentinels have promoted the
replica, the killed master comes back as its replica (as an operator, or a supervisor,
restarts it); the senders retry every 503 until answered 202. Then every event answered
202 must be texted exactly once.

With SMS_REDIS_MIN_REPLICAS=1 nothing is answered 202 (and no send leaves) before the
replica has it, so the promoted replica holds every promise. With 0, an answer may go out
for a write the replica never got: what that costs is measured, not promised.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.procs import Proc, Processes
from tests.reliability.rig import Measure, Rig, Tally, event
from tests.reliability.sentinels import Sentinels
from tests.reliability.test_faults import TIMEOUT

pytestmark = pytest.mark.reliability

EVENTS, RATE = 400, 80  # events/s, one per request, from 4 senders
LINK_DROP_S = 1.5


def _failover_mid_burst(
    folder: Path, min_replicas: int, link_drop_s: float = 0.0
) -> tuple[Tally, str, Rig, int]:
    """The burst, the kill, the promotion; the tally, what else was counted, the rig and
    how many deliveries answered 202 the new master has no record of."""
    settings = {**TIMEOUT, "redis_min_replicas": str(min_replicas), "redis_wait_timeout": "500"}
    with Processes(folder / "logs") as procs:
        setup = Sentinels.start(procs, folder)
        with Rig.running(folder, settings=settings, processes=procs, redis_url=setup.url) as rig:
            rig.fake.latency = 0.2
            with ThreadPoolExecutor(1) as loader:
                loading = loader.submit(rig.post_steadily, [event(n) for n in range(EVENTS)], RATE)
                rig.wait_for_requests(EVENTS // 4)
                if link_drop_s:
                    # The worker falls behind (stopped) while the link is down: what the
                    # master admits meanwhile is still to be sent when it dies.
                    _signal(rig.workers[0], signal.SIGSTOP)
                    setup.drop_link()
                    time.sleep(link_drop_s)
                before = len(rig.accepted)
                setup.kill_master()
                promoted_s = setup.wait_promoted()
                if link_drop_s:
                    _signal(rig.workers[0], signal.SIGCONT)
                setup.restart_old_master()
                loading.result()
            _check_landed(before < EVENTS, "in the middle of the burst")
            records = rig.settle()
            tally = rig.tally()
            gone = sum(1 for a in rig.sending() if a.delivery_id not in records)
    extra = (
        f"{before} answered 202 before the kill; promoted after {promoted_s:.1f} s; "
        f"{rig.refused} answers 503 (retried); {gone} records gone"
    )
    return tally, extra, rig, gone


def test_sentinel_failover_with_a_replica_required(tmp_path: Path, measured: Measure) -> None:
    tally, extra, rig, gone = _failover_mid_burst(tmp_path, min_replicas=1)
    measured("master SIGKILLed mid-burst, Sentinel failover, MIN_REPLICAS=1", tally, extra)
    assert (tally.duplicates, tally.lost, gone) == (0, 0, 0), rig.errors()
    assert rig.refused_without_retry_after == 0


def test_replica_promoted_after_its_link_dropped(tmp_path: Path, measured: Measure) -> None:
    # Issue 12's row: the replica's link drops, the master goes on, then dies; the replica,
    # promoted, never had what the master answered meanwhile. With a replica required,
    # nothing is answered 202 meanwhile: the senders are told 503 and retry.
    tally, extra, rig, gone = _failover_mid_burst(tmp_path, 1, link_drop_s=LINK_DROP_S)
    measured(
        f"replica's link dropped {LINK_DROP_S:g} s (worker behind), then master SIGKILLed; "
        "MIN_REPLICAS=1",
        tally,
        extra,
    )
    assert (tally.duplicates, tally.lost, gone) == (0, 0, 0), rig.errors()
    assert rig.refused > 0  # the link drop was felt: 503s, not 202s the replica lacks


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="SMS_REDIS_MIN_REPLICAS=0: replication is asynchronous; what the master answered "
    "202 while its replica's link was down is not on the promoted replica (measured)",
)
def test_link_dropped_without_waiting_for_replicas(tmp_path: Path, measured: Measure) -> None:
    tally, extra, rig, gone = _failover_mid_burst(tmp_path, 0, link_drop_s=LINK_DROP_S)
    measured(
        f"replica's link dropped {LINK_DROP_S:g} s (worker behind), then master SIGKILLed; "
        "MIN_REPLICAS=0 (expected to lose)",
        tally,
        extra,
    )
    assert (tally.duplicates, tally.lost, gone) == (0, 0, 0), rig.errors()


def _signal(proc: Proc, signum: int) -> None:
    os.killpg(proc.pid, signum)


def _check_landed(landed: bool, where: str) -> None:
    if not landed:
        raise RuntimeError(f"the fault did not land {where}")
