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

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.procs import Processes
from tests.reliability.rig import Measure, Rig, Tally, event
from tests.reliability.sentinels import Sentinels
from tests.reliability.test_faults import TIMEOUT

pytestmark = pytest.mark.reliability

EVENTS, RATE = 400, 80  # events/s, one per request, from 4 senders


def _failover_mid_burst(folder: Path, min_replicas: int) -> tuple[Tally, str, Rig]:
    settings = {**TIMEOUT, "redis_min_replicas": str(min_replicas), "redis_wait_timeout": "500"}
    with Processes(folder / "logs") as procs:
        setup = Sentinels.start(procs, folder)
        with Rig.running(folder, settings=settings, processes=procs, redis_url=setup.url) as rig:
            rig.fake.latency = 0.2  # ~16 requests at Twilio at any time
            with ThreadPoolExecutor(1) as loader:
                loading = loader.submit(rig.post_steadily, [event(n) for n in range(EVENTS)], RATE)
                rig.wait_for_requests(EVENTS // 4)
                before = len(rig.accepted)
                setup.kill_master()
                promoted_s = setup.wait_promoted()
                setup.restart_old_master()
                loading.result()
            _check_landed(before < EVENTS, "in the middle of the burst")
            rig.settle()
            tally = rig.tally()
    extra = (
        f"{before} answered 202 before the kill; promoted after {promoted_s:.1f} s; "
        f"{rig.refused} answers 503 (retried)"
    )
    return tally, extra, rig


def test_sentinel_failover_with_a_replica_required(tmp_path: Path, measured: Measure) -> None:
    tally, extra, rig = _failover_mid_burst(tmp_path, min_replicas=1)
    measured("master SIGKILLed mid-burst, Sentinel failover, MIN_REPLICAS=1", tally, extra)
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()
    assert rig.refused_without_retry_after == 0


@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="SMS_REDIS_MIN_REPLICAS=0: replication is asynchronous, a 202 may precede the "
    "replica's copy (measured; often 0 on loopback)",
)
def test_sentinel_failover_without_waiting_for_replicas(tmp_path: Path, measured: Measure) -> None:
    tally, extra, rig = _failover_mid_burst(tmp_path, min_replicas=0)
    measured("master SIGKILLed mid-burst, Sentinel failover, MIN_REPLICAS=0", tally, extra)
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


def _check_landed(landed: bool, where: str) -> None:
    if not landed:
        raise RuntimeError(f"the fault did not land {where}")
