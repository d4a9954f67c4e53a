"""Graceful shutdown of `smsdest serve` (issue 12, item 8): SIGTERM turns /readyz red and
refuses new ingest (503) at once, gives in-flight sends SMS_SHUTDOWN_GRACE to finish, leaves
the rest to the resolver, and exits with status 0. The service runs as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.store import keys
from bench.procs import free_port
from tests.conftest import (
    ACCOUNT_SID,
    ADMIN_TOKEN,
    AUTH_TOKEN,
    INGEST_TOKEN,
    REDIS_URL,
    REPO,
    SIGNUP_DESTINATION,
    RunningService,
    posthog_webhook,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio, ScriptedResponse

Start = Callable[..., RunningService]


class ServeProcess:
    """`smsdest serve` with its send worker, in a process of its own."""

    def __init__(self, tmp_path: Path, twilio_url: str, grace_s: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SMS_REDIS_URL": REDIS_URL,
            "SMS_PORT": str(self.port),
            "SMS_INGEST_TOKEN": INGEST_TOKEN,
            "SMS_ADMIN_TOKEN": ADMIN_TOKEN,
            "SMS_DESTINATIONS_FILE": str(write_destinations(tmp_path, SIGNUP_DESTINATION)),
            "SMS_TEMPLATES_DIR": str(REPO / "templates"),
            "SMS_TWILIO_BASE_URL": twilio_url,
            "SMS_TWILIO_TIMEOUT": "5",
            "SMS_SHUTDOWN_GRACE": str(grace_s),
            "SMS_RECONCILE_INTERVAL": "0",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            timeout=10,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.stderr and self.proc.stderr.read()
            assert time.monotonic() < deadline, "smsdest serve did not get ready"
            time.sleep(0.05)

    def queue_one(self) -> str:
        answer = self.http.post("/v1/events", json=posthog_webhook())
        delivery = answer.json()["results"][0]["deliveries"][0]
        assert delivery["decision"] == "queued", delivery
        delivery_id: str = delivery["delivery_id"]
        return delivery_id

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(twilio_url: str, grace_s: int) -> ServeProcess:
        started.append(ServeProcess(tmp_path, twilio_url, grace_s))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_sigterm_drains_then_exits_0_with_the_send_finished(
    serve_process: Callable[..., ServeProcess],
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
) -> None:
    server = serve_process(fake_twilio.base_url, grace_s=10)
    fake_twilio.latency = 2.0  # Twilio answers the create 2 s later
    delivery_id = server.queue_one()
    fake_twilio.wait_for_requests(1)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = server.http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["detail"] == "shutting down"
    refused = server.http.post("/v1/events", json=posthog_webhook(uuid="during-shutdown"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "unavailable"
    assert server.proc.wait(15) == 0
    # It waited for Twilio's answer (2 s), and recorded it.
    assert time.monotonic() - signalled >= 1.5
    assert redis_client.hget(keys.delivery(delivery_id), "status") == "sent"
    assert len(fake_twilio.messages) == 1


def test_a_send_outliving_the_grace_is_left_to_the_resolver(
    serve_process: Callable[..., ServeProcess],
    start_service: Start,
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
) -> None:
    server = serve_process(fake_twilio.base_url, grace_s=1)
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, delay=6.0))
    delivery_id = server.queue_one()
    fake_twilio.wait_for_requests(1)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    # The grace (1 s) and the process's own exit, not the send (6 s): a loaded machine
    # (CI's 2 cores) has taken 1.6 s to exit.
    assert time.monotonic() - signalled < 4.5
    assert redis_client.hget(keys.delivery(delivery_id), "status") == "sending"
    # Another worker takes it over and finds Twilio created it: one text.
    fast = {"twilio_timeout": 1, "reclaim_idle": 3, "twilio_list_delay": 1}
    other = start_service(SIGNUP_DESTINATION, **fast)
    record = other.wait_for_status(delivery_id, "sent", timeout=15)
    assert record["twilio_sid"] == next(iter(fake_twilio.messages))
    assert len(fake_twilio.message_requests) == 1
