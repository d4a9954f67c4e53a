"""Shared fixtures: a real Redis (started by the tests, flushed per test), a real fake-Twilio
HTTP server, and the service itself running under uvicorn with its real lifespan."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from app.main import create_app
from app.settings import Settings
from app.twilio.transport import AiohttpTransport
from bench.procs import free_port, redis_server_argv
from tests.fake_twilio import FakeTwilio


def _start_own_redis() -> str:
    """A redis-server of the suite's own on a free port, stopped when the run ends: the
    tests flush their database, so they never run against a Redis they did not start."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="smsdest-test-redis-")
    server = subprocess.Popen(
        [*redis_server_argv(port), "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(lambda: (server.terminate(), server.wait(10)))
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test Redis did not start") from None
            time.sleep(0.02)
    client.close()
    return f"redis://127.0.0.1:{port}/15"


# SMS_TEST_REDIS_URL points the suite at a Redis of your choosing; its database is flushed.
REDIS_URL = os.environ.get("SMS_TEST_REDIS_URL") or _start_own_redis()
ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
INGEST_TOKEN = "ingest-secret-for-tests"
ADMIN_TOKEN = "admin-secret-for-tests"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    server.start()
    yield server
    server.stop()


def twilio_http(**options: Any) -> httpx.AsyncClient:
    """An HTTP client for `TwilioClient` with the transport production uses."""
    return httpx.AsyncClient(transport=AiohttpTransport(max_connections=8), **options)


@dataclass
class RunningService:
    """The service under test, reachable over real HTTP."""

    base_url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, token: str | None = INGEST_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def post_events(self, payload: Any) -> httpx.Response:
        with self.client() as client:
            return client.post("/v1/events", json=payload)

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        with self.admin() as client:
            response = client.get(f"/v1/deliveries/{delivery_id}")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def wait_for_status(
        self, delivery_id: str, *statuses: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.delivery(delivery_id)
            if record["status"] in statuses:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"delivery stayed {record['status']}: {record}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def write_destinations(tmp_path: Path, yaml_text: str) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    return path


def service_settings(destinations_file: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "destinations_file": destinations_file,
        "templates_dir": REPO / "templates",
        "ingest_token": INGEST_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        # Pacing runs in every test, at a pace that never holds one back (test_pacing.py
        # tests the pace itself).
        "sender_default_rate": 10_000,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def start_service(
    redis_client: redis.Redis, fake_twilio: FakeTwilio, tmp_path: Path
) -> Iterator[Callable[..., RunningService]]:
    """Start the service with a destinations YAML; Twilio is the fake server by default."""
    running: list[RunningService] = []

    def start(yaml_text: str, run_worker: bool = True, **overrides: Any) -> RunningService:
        overrides.setdefault("twilio_base_url", fake_twilio.base_url)
        settings = service_settings(write_destinations(tmp_path, yaml_text), **overrides)
        app = create_app(settings, run_worker=run_worker)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("service did not start")
            time.sleep(0.01)
        service = RunningService(f"http://127.0.0.1:{port}", settings, server, thread)
        running.append(service)
        return service

    yield start
    for service in running:
        service.stop()


SIGNUP_DESTINATION = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name | default('friend') }}!"
    from: "+15005550006"
"""


THROTTLED_DESTINATION = """
destinations:
  - id: welcome
    body: "Hi"
    from: "+15005550006"
    throttle: {window: 1h}
"""


def posthog_webhook(
    uuid: str = "0190e4c6-0000-7000-8000-000000000001",
    event: str = "signed up",
    phone: str | None = "+14155552671",
    properties: dict[str, Any] | None = None,
    person_properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """PostHog's HTTP-webhook destination default body."""
    person_props = {"name": "Ada", **({"phone": phone} if phone else {})}
    person_props.update(person_properties or {})
    return {
        "event": {
            "uuid": uuid,
            "event": event,
            "distinct_id": "user-1",
            "properties": properties or {"plan": "pro"},
            "timestamp": "2026-11-23T10:00:00Z",
            "elements_chain": "",
            "url": "https://posthog.example/events/1",
        },
        "person": {
            "id": "person-1",
            "properties": person_props,
            "name": "Ada",
            "url": "https://posthog.example/person/1",
        },
    }


SENDERS = Path(__file__).resolve().parent / "fixtures" / "senders"


def sender_payload(name: str) -> dict[str, Any]:
    """A real sender's payload shape, from `tests/fixtures/senders/<name>.json`."""
    payload: dict[str, Any] = json.loads((SENDERS / f"{name}.json").read_text())
    return payload
