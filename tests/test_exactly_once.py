"""Exactly once at Twilio's door: the intent ledger and the resolver (issue 12, item 1).

A worker records each attempt (`sending`) before its request leaves; an attempt whose
outcome is not known — its worker was SIGKILLed, the connection dropped after the request
left, Redis was away when Twilio answered — is resolved by asking Twilio's message list
before anything is sent again. Each test counts the texts Twilio created: exactly one.

Workers run as `smsdest worker` processes (SIGKILLed for real) or inside the service under
test; Redis and Twilio are real servers (the suite's redis-server, the HTTP fake).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from app.store import keys
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    REDIS_URL,
    REPO,
    SIGNUP_DESTINATION,
    RunningService,
    posthog_webhook,
)
from tests.fake_twilio import FakeTwilio, ScriptedResponse
from tests.test_redis_checks import OwnRedis
from tests.test_twilio_webhooks import PUBLIC, signed_post

Start = Callable[..., RunningService]
# Small on purpose: a dead worker's entry is reclaimed after 3 s (the least a 1 s Twilio
# deadline allows), and Twilio's list is asked 1 s after an attempt could last have
# reached it.
FAST = {"twilio_timeout": 1, "reclaim_idle": 3, "twilio_list_delay": 1}


def queue_one(service: RunningService, uuid: str = "evt-1") -> str:
    answer = service.post_events(posthog_webhook(uuid=uuid)).json()
    delivery = answer["results"][0]["deliveries"][0]
    assert delivery["decision"] == "queued", delivery
    delivery_id: str = delivery["delivery_id"]
    return delivery_id


class WorkerProcess:
    """`smsdest worker` in a process of its own, to be SIGKILLed mid-send."""

    def __init__(self, destinations: Path, twilio_url: str, redis_url: str = REDIS_URL) -> None:
        env = {
            **os.environ,
            "SMS_REDIS_URL": redis_url,
            "SMS_DESTINATIONS_FILE": str(destinations),
            "SMS_TEMPLATES_DIR": str(REPO / "templates"),
            "SMS_TWILIO_BASE_URL": twilio_url,
            "SMS_TWILIO_TIMEOUT": "1",
            "SMS_RECLAIM_IDLE": "3",
            "SMS_TWILIO_LIST_DELAY": "1",
            "SMS_RECONCILE_INTERVAL": "0",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(twilio_url: str, redis_url: str = REDIS_URL) -> WorkerProcess:
        started.append(WorkerProcess(tmp_path / "destinations.yaml", twilio_url, redis_url))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def status_of(client: redis.Redis, delivery_id: str) -> str | None:
    status: str | None = client.hget(keys.delivery(delivery_id), "status")  # type: ignore[assignment]
    return status


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A Twilio that accepts connections and never reads a byte: a request sent there
    never reaches Twilio."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_killed_before_the_request_reached_twilio_is_sent_once(
    start_service: Start,
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
    worker_process: Callable[..., WorkerProcess],
    black_hole: str,
) -> None:
    api = start_service(SIGNUP_DESTINATION, run_worker=False)
    delivery_id = queue_one(api)
    # The attempt is recorded; its request never reaches Twilio; the worker dies.
    worker = worker_process(black_hole)
    wait_until(lambda: status_of(redis_client, delivery_id) == "sending")
    worker.kill()
    # Another worker takes the entry over: outcome unknown, Twilio asked, not there: sent.
    start_service(SIGNUP_DESTINATION, **FAST)
    record = api.wait_for_status(delivery_id, "sent", timeout=15)
    assert len(fake_twilio.messages) == 1
    assert record["attempts"] == 2
    statuses = [h["status"] for h in record["history"]]
    assert statuses[:3] == ["queued", "sending", "unknown"]
    assert statuses[-2:] == ["sending", "sent"] and statuses.count("sending") == 2


def test_killed_after_the_request_left_is_adopted_not_resent(
    start_service: Start,
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    api = start_service(SIGNUP_DESTINATION, run_worker=False)
    delivery_id = queue_one(api)
    # Twilio takes 0.5 s to create it; the worker is killed as soon as the request is in.
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, delay=0.5))
    worker = worker_process(fake_twilio.base_url)
    fake_twilio.wait_for_requests(1, timeout=15)
    worker.kill()
    start_service(SIGNUP_DESTINATION, **FAST)
    record = api.wait_for_status(delivery_id, "sent", timeout=15)
    [sid] = fake_twilio.messages
    assert record["twilio_sid"] == sid and record["attempts"] == 1
    assert len(fake_twilio.message_requests) == 1
    assert "adopted, not sent again" in record["history"][-1]["detail"]


def test_killed_after_twilio_answered_before_recording_is_adopted(
    start_service: Start,
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    api = start_service(SIGNUP_DESTINATION, run_worker=False)
    delivery_id = queue_one(api)
    fake_twilio.latency = 0.5  # Twilio creates the message and answers 0.5 s later
    worker = worker_process(fake_twilio.base_url)
    fake_twilio.wait_for_requests(1, timeout=15)
    # Redis holds every write while Twilio answers: the answer cannot be recorded.
    redis_client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
    try:
        wait_until(lambda: len(fake_twilio.messages) == 1)
        time.sleep(0.3)  # the answer is in the worker's hands
        worker.kill()
    finally:
        redis_client.execute_command("CLIENT", "UNPAUSE")
    fake_twilio.latency = 0.0
    assert status_of(redis_client, delivery_id) == "sending"
    start_service(SIGNUP_DESTINATION, **FAST)
    record = api.wait_for_status(delivery_id, "sent", timeout=15)
    assert record["twilio_sid"] == next(iter(fake_twilio.messages))
    assert len(fake_twilio.message_requests) == 1


def test_killed_after_recording_sends_nothing_more(
    start_service: Start,
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    api = start_service(SIGNUP_DESTINATION, run_worker=False)
    delivery_id = queue_one(api)
    worker = worker_process(fake_twilio.base_url)
    api.wait_for_status(delivery_id, "sent", timeout=15)
    worker.kill()
    start_service(SIGNUP_DESTINATION, **FAST)
    time.sleep(4)  # past the reclaim time
    assert len(fake_twilio.message_requests) == 1
    assert redis_client.xpending(keys.SEND_STREAM, keys.SEND_GROUP)["pending"] == 0


def test_twilio_creating_then_dropping_the_connection_is_one_text(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, drop=True))
    service = start_service(SIGNUP_DESTINATION, **FAST)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "unknown")
    assert "outcome unknown" in record["error_message"]
    record = service.wait_for_status(delivery_id, "sent", timeout=10)
    assert len(fake_twilio.message_requests) == 1 and len(fake_twilio.messages) == 1
    assert record["twilio_sid"] == next(iter(fake_twilio.messages))


def test_a_connection_dropped_before_twilio_created_it_is_sent_again_once(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.enqueue(ScriptedResponse(201, drop=True))  # nothing created
    service = start_service(SIGNUP_DESTINATION, **FAST)
    delivery_id = queue_one(service)
    record = service.wait_for_status(delivery_id, "sent", timeout=10)
    assert len(fake_twilio.message_requests) == 2 and len(fake_twilio.messages) == 1
    assert record["attempts"] == 2


@pytest.fixture
def restartable_redis() -> Iterator[OwnRedis]:
    """A redis-server of this test's own, to stop and start again (AOF, fsync always)."""
    server = OwnRedis("--appendonly", "yes", "--appendfsync", "always")
    yield server
    server.stop()


def test_an_answer_redis_could_not_take_is_held_and_recorded_once_it_is_back(
    start_service: Start, fake_twilio: FakeTwilio, restartable_redis: OwnRedis
) -> None:
    server = restartable_redis
    fake_twilio.latency = 0.5  # Twilio creates the message and answers 0.5 s later
    service = start_service(SIGNUP_DESTINATION, redis_url=server.url, **FAST)
    delivery_id = queue_one(service)
    fake_twilio.wait_for_requests(1)
    server.stop()  # Redis goes away while Twilio answers
    wait_until(lambda: len(fake_twilio.messages) == 1)
    fake_twilio.latency = 0.0
    time.sleep(5)  # longer than the reclaim time: the answer is held, never handed back
    server.start()
    record = service.wait_for_status(delivery_id, "sent", timeout=15)
    assert record["twilio_sid"] == next(iter(fake_twilio.messages))
    # Twilio's own answer, recorded as it came (not an outcome resolved later).
    assert [h["status"] for h in record["history"]] == ["queued", "sending", "sent"]
    time.sleep(4)  # past another reclaim time: nothing is sent again
    assert len(fake_twilio.message_requests) == 1


def test_a_status_callback_naming_the_delivery_settles_an_unknown_outcome(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, drop=True))
    # The resolver would wait a minute: the callback comes first.
    service = start_service(SIGNUP_DESTINATION, public_base_url=PUBLIC, twilio_list_delay=60)
    delivery_id = queue_one(service)
    service.wait_for_status(delivery_id, "unknown")
    [request] = fake_twilio.message_requests
    assert request.form["StatusCallback"] == f"{PUBLIC}/v1/twilio/status/{delivery_id}"
    [sid] = fake_twilio.messages
    form = {"MessageSid": sid, "MessageStatus": "sent", "To": "+14155552671"}
    answer = signed_post(service, f"/v1/twilio/status/{delivery_id}", form)
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied"
    record = service.delivery(delivery_id)
    assert (record["status"], record["twilio_sid"]) == ("sent", sid)
    assert "adopted, not sent again" in record["history"][-2]["detail"]
    # When the parked delivery comes round, it is found done: nothing more is sent.
    redis_client.zadd(keys.DELAYED_SENDS, {delivery_id: 0})
    time.sleep(1)
    assert len(fake_twilio.message_requests) == 1
    assert redis_client.xlen(keys.SEND_STREAM) == 0
