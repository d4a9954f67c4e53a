"""Issue 12's table, row by row: a fault done to the running service, then 0 duplicate texts
and 0 lost events, counted at Twilio, among the events answered 202.

A row that fails today is `xfail(strict=True)` with what it measured: the day the fix lands
it passes, strict turns that into a failure, and the marker has to go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fake_twilio import ScriptedResponse, twilio_error
from tests.reliability.rig import FINAL, Measure, Rig, event, gaps_closer_than

pytestmark = pytest.mark.reliability

# Short enough for a test, long enough for a loaded 2-core machine; the reclaim idle
# outlives a request's deadline plus the bookkeeping around it, as the service requires.
# The fake's list lags nothing: an unknown outcome is looked up 2 s after its deadline.
TIMEOUT = {"twilio_timeout": "3", "reclaim_idle": "5", "twilio_list_delay": "2"}


def fails_today(what_happens: str) -> pytest.MarkDecorator:
    """A row issue 12 breaks today, with what it measured. Only the row's own assertion
    counts as the expected failure: a rig that did not start or a fault that did not
    land where it should is an error, not an expected failure."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"issue 12: {what_happens}")


def _burst(rig: Rig, count: int, per_request: int = 50) -> None:
    for start in range(0, count, per_request):
        rig.post([event(n) for n in range(start, min(start + per_request, count))])


def test_worker_killed_mid_burst(tmp_path: Path, measured: Measure) -> None:
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.latency = 0.2  # Twilio's answer time: ~100 requests in flight (concurrency)
        _burst(rig, 300)
        rig.wait_for_requests(120)
        rig.kill(rig.workers[0])
        rig.start_worker()
        rig.settle()
        tally = rig.tally()
    measured("worker SIGKILLed once mid-burst", tally, "")
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


def test_worker_killed_after_the_request_left(tmp_path: Path, measured: Measure) -> None:
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.latency = 2.0  # Twilio creates each message 2 s after receiving it
        _burst(rig, 50)
        rig.wait_for_requests(50)
        rig.kill(rig.workers[0])
        _check_landed(not rig.texts(), "before Twilio created the messages")
        rig.fake.latency = 0.0
        rig.start_worker()
        rig.settle()
        tally = rig.tally()
    measured("worker SIGKILLed after the request left", tally, "")
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


def test_worker_killed_after_twilio_answered(tmp_path: Path, measured: Measure) -> None:
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.latency = 2.0
        _burst(rig, 50)
        rig.wait_for_requests(50)
        # Writes wait (reads do not) from now: the worker gets Twilio's answers but its
        # script recording them hangs; the kill lands between the answer and the record.
        rig.redis.client_pause(30_000, all=False)
        _wait_until(lambda: len(rig.texts()) == 50, 10)
        time.sleep(0.5)  # the answers reach the worker
        rig.kill(rig.workers[0])
        rig.redis.client_unpause()
        records = rig.records().values()
        unrecorded = all(not r["twilio_sid"] and r["status"] not in FINAL for r in records)
        _check_landed(unrecorded, "before the worker recorded Twilio's answers")
        rig.fake.latency = 0.0
        rig.start_worker()
        rig.settle()
        tally = rig.tally()
    measured("worker SIGKILLed after Twilio answered", tally, "")
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


@pytest.mark.parametrize(
    "how",
    ["kill", "shutdown"],
)
def test_redis_stopped_under_load(tmp_path: Path, measured: Measure, how: str) -> None:
    with Rig.running(tmp_path, aof=True, settings=TIMEOUT) as rig:
        rig.fake.latency = 1.0  # ~75 requests at Twilio at any time at 75 events/s
        with ThreadPoolExecutor(1) as loader:
            loading = loader.submit(rig.post_steadily, [event(n) for n in range(300)], 75)
            rig.wait_for_requests(60)
            rig.stop_redis(how)
            time.sleep(5)
            rig.restart_redis()
            loading.result()
        rig.settle()
        tally = rig.tally()
    measured(
        f"Redis stopped 5 s under load ({'SIGKILL' if how == 'kill' else 'SHUTDOWN'}, AOF)",
        tally,
        "",
    )
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


def test_twilio_trickling_past_the_timeout(tmp_path: Path, measured: Measure) -> None:
    # Before SMS_TWILIO_TIMEOUT bounded the whole request (fac60d2) it bounded each read:
    # the second worker took over all 20 messages still trickling in, 20 duplicates.
    # The worker that sends is given a long SMS_RECLAIM_IDLE: a worker takes its own
    # in-flight messages back too (and then skips them), so with two short ones the fault
    # shows only when the other worker happens to look first (5 runs of 6).
    with Rig.running(tmp_path, settings={"twilio_timeout": "1", "reclaim_idle": "60"}) as rig:
        rig.fake.trickle = 0.012  # a byte every 12 ms: ~12 s for the whole answer
        rig.post([event(n) for n in range(20)])
        rig.wait_for_requests(20)
        time.sleep(0.5)  # every answer has started trickling (a request is counted first)
        rig.fake.trickle = 0.0  # a second try is answered at once
        rig.start_worker({"reclaim_idle": "3"})
        rig.settle()
        tally = rig.tally()
    measured("Twilio trickling ~12 s (timeout 1 s; 2nd worker, reclaim 3 s)", tally, "")
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()


def test_retry_inside_the_throttle_window(tmp_path: Path, measured: Measure) -> None:
    window, recipients = 6, 20
    with Rig.running(tmp_path, throttle_s=window) as rig:
        busy = twilio_error(503, 20503, "Service unavailable")
        rig.fake.enqueue(
            *[ScriptedResponse(503, busy, headers={"Retry-After": "3"}) for _ in range(recipients)]
        )
        rig.post([event(n) for n in range(recipients)])
        admitted = time.monotonic()
        rig.wait_for_requests(2 * recipients)  # the first tries, then the retries 3 s later
        # The window (from admission) is over: a second event for each recipient.
        time.sleep(max(0.0, admitted + window + 0.5 - time.monotonic()))
        rig.post([event(recipients + n, recipient=n) for n in range(recipients)])
        rig.settle()
        tally = rig.tally()
        too_close = gaps_closer_than(rig.fake, window)
    measured(
        f"send retried 3 s late, throttle window {window} s",
        tally,
        f"{too_close} texts closer than the window",
    )
    assert (tally.duplicates, tally.lost, too_close) == (0, 0, 0), rig.errors()


def test_retry_after_beyond_retention(tmp_path: Path, measured: Measure) -> None:
    # The shortest retention the service accepts; a retry cap that does not shorten the wait.
    settings = {"delivery_retention": "60", "retry_max_delay": "120"}
    with Rig.running(tmp_path, settings=settings) as rig:
        slow_down = twilio_error(429, 20429, "Too Many Requests")
        rig.fake.enqueue(
            *[ScriptedResponse(429, slow_down, headers={"Retry-After": "61"}) for _ in range(5)]
        )
        rig.post([event(n) for n in range(5)])
        retries_due = time.monotonic() + 61
        rig.wait_for_requests(5)
        time.sleep(retries_due + 1 - time.monotonic())
        records = rig.settle()
        tally = rig.tally()
        gone = sum(1 for a in rig.sending() if a.delivery_id not in records)
    measured("Retry-After 61 s, retention 60 s", tally, f"{gone} records gone")
    assert (tally.duplicates, tally.lost, gone) == (0, 0, 0), rig.errors()


def test_twilio_accepts_then_drops_the_connection(tmp_path: Path, measured: Measure) -> None:
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.enqueue(*[ScriptedResponse(201, accept=True, drop=True) for _ in range(50)])
        _burst(rig, 50)
        records = rig.settle()
        tally = rig.tally()
        wrong = rig.recorded_wrong(records)
    measured("Twilio accepts, then drops the connection", tally, f"{wrong} recorded not sent")
    assert (tally.duplicates, tally.lost, wrong) == (0, 0, 0), rig.errors()


def test_twilio_drops_the_connection_before_accepting(tmp_path: Path, measured: Measure) -> None:
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.enqueue(*[ScriptedResponse(201, drop=True) for _ in range(50)])
        _burst(rig, 50)
        records = rig.settle()
        tally = rig.tally()
        wrong = rig.recorded_wrong(records)
    measured("Twilio drops the connection before accepting", tally, "")
    assert (tally.duplicates, tally.lost, wrong) == (0, 0, 0), rig.errors()


def _check_landed(landed: bool, where: str) -> None:
    """The fault must hit the step the row is about; if not, the row proved nothing."""
    if not landed:
        raise RuntimeError(f"the fault did not land {where}")


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)
