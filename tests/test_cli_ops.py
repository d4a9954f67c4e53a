"""`smsdest deliveries|test|reload` run as subprocesses against a running `smsdest serve`
(a subprocess too, with its embedded Redis), through that Redis and through the HTTP API;
and SIGHUP."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.procs import free_port
from tests.conftest import ACCOUNT_SID, ADMIN_TOKEN, AUTH_TOKEN, INGEST_TOKEN, REPO, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_cli import cli_env

DESTINATIONS = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name }}!"
    from: "+15005550006"
"""


@dataclass
class Served:
    """A `smsdest serve` subprocess with its embedded Redis, and how to run the CLI at it."""

    process: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    destinations: Path
    twilio: FakeTwilio

    def post_event(self, phone: str, name: str = "Ada") -> str:
        body = posthog_webhook(
            uuid=str(uuid.uuid4()), phone=phone, person_properties={"name": name}
        )
        answer = httpx.post(
            f"{self.url}/v1/events",
            json=body,
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        delivery_id: str = answer.json()["results"][0]["deliveries"][0]["delivery_id"]
        return delivery_id

    def run(self, *args: str, api: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
        """The CLI through serve's embedded Redis, or with `api` through its HTTP API."""
        run_env = {**self.env, **env}
        if api:
            run_env.update(SMS_API_URL=self.url, SMS_ADMIN_TOKEN=ADMIN_TOKEN)
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=REPO,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert AUTH_TOKEN not in result.stdout + result.stderr
        return result

    def wait_status(self, delivery_id: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            result = self.run("deliveries", "get", delivery_id, "--json")
            record: dict[str, Any] = json.loads(result.stdout)
            if record["status"] in statuses:
                return record
            assert time.monotonic() < deadline, record
            time.sleep(0.05)


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    """One fake Twilio for the module's one `serve` (tests count the texts they add)."""
    server = FakeTwilio()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(twilio: FakeTwilio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `serve` for the module (starting one costs seconds); each test uses its own
    recipient and puts the destinations file back."""
    tmp_path = tmp_path_factory.mktemp("served")
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(textwrap.dedent(DESTINATIONS))
    port = free_port()
    env = cli_env(
        SMS_DATA_DIR=str(tmp_path / "data"),
        SMS_DESTINATIONS_FILE=str(destinations),
        SMS_TEMPLATES_DIR=str(REPO / "templates"),
        SMS_TWILIO_BASE_URL=twilio.base_url,
        SMS_RECONCILE_INTERVAL="0",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMS_CONFIG_POLL_INTERVAL="0.1",
    )
    serve_env = {**env, "SMS_INGEST_TOKEN": INGEST_TOKEN, "SMS_ADMIN_TOKEN": ADMIN_TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    yield Served(process, url, env, destinations, twilio)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    # Gone with serve: a command no longer finds its embedded Redis.
    assert not (tmp_path / "data" / "redis.url").exists()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def phone(test: str, api: bool = False) -> str:
    """A recipient of the test's own (the module shares one serve and its log)."""
    return f"+1415555{zlib.crc32(f'{test}{api}'.encode()) % 10_000:04d}"


@contextlib.contextmanager
def destinations_restored(served: Served) -> Iterator[None]:
    try:
        yield
    finally:
        served.destinations.write_text(textwrap.dedent(DESTINATIONS))
        assert served.run("reload").returncode == 0
        time.sleep(0.3)  # serve polls every 0.1 s


def new_texts(served: Served, before: int, expected: int) -> None:
    """Exactly `expected` more texts than `before`, even after the worker had time."""
    served.twilio.wait_for_requests(before + expected)
    time.sleep(0.3)
    assert len(served.twilio.message_requests) == before + expected


API = pytest.mark.parametrize("api", [False, True], ids=["embedded-redis", "http-api"])


@API
def test_deliveries_list_get(served: Served, api: bool) -> None:
    to = phone("list", api)
    first, second = served.post_event(to), served.post_event(to, "Bo")
    served.wait_status(second, "sent")
    listed = served.run("deliveries", "list", "--recipient", to, "--json", api=api)
    assert listed.returncode == 0, listed.stderr
    assert [d["id"] for d in json_lines(listed.stdout)] == [second, first]  # newest first
    one = served.run("deliveries", "list", "--recipient", to, "--limit", "1", "--json", api=api)
    assert len(json_lines(one.stdout)) == 1 and f"--cursor {second}" in one.stderr

    got = served.run("deliveries", "get", first, "--json", api=api)
    assert got.returncode == 0 and json.loads(got.stdout)["body"] == "Welcome Ada!"
    human = served.run("deliveries", "get", first, api=api)
    assert "Welcome Ada!" in human.stdout and "\x1b[" not in human.stdout  # no colour in a pipe
    table = served.run("deliveries", "list", "--recipient", to, api=api)
    assert first in table.stdout and "welcome" in table.stdout

    missing = served.run("deliveries", "get", "dl_" + "0" * 28, api=api)
    assert missing.returncode == 3 and "no delivery" in missing.stderr
    assert served.run("deliveries", "get", "nope", api=api).returncode == 2


@API
def test_deliveries_list_time_range(served: Served, api: bool) -> None:
    to = phone("range", api)
    first = served.post_event(to)
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    second = served.post_event(to, "Bo")

    def listed(*options: str) -> list[str]:
        run = served.run("deliveries", "list", "--recipient", to, *options, "--json", api=api)
        assert run.returncode == 0, run.stderr
        return [d["id"] for d in json_lines(run.stdout)]

    assert listed("--since", between) == [second]
    assert listed("--until", between) == [first]
    assert listed("--since", between, "--until", between) == []
    backwards = served.run(
        "deliveries", "list", "--since", between, "--until", "2020-01-01", api=api
    )
    assert backwards.returncode == 2 and "--since is after --until" in backwards.stderr


def test_without_a_running_serve_says_what_to_set(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "deliveries", "list"],
        cwd=REPO,
        env=cli_env(SMS_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SMS_REDIS_URL, or a running `smsdest serve`" in result.stderr


def test_tail_follows_new_deliveries(served: Served) -> None:
    to = phone("tail")
    served.post_event(to)  # before the tail: not shown
    argv = ["deliveries", "tail", "--recipient", to, "--count", "2", "--json"]
    tail = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *argv, "--interval", "0.1", "--for", "20"],
        cwd=REPO,
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tail.stderr is not None
    assert "following deliveries after" in tail.stderr.readline()  # it knows where it starts
    new = [served.post_event(to), served.post_event(to)]
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    assert [d["id"] for d in json_lines(out)] == new


@API
def test_test_prints_the_trace(served: Served, api: bool, tmp_path: Path) -> None:
    to = phone("trace", api)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(posthog_webhook(phone=to)))
    before = len(served.twilio.message_requests)
    result = served.run("test", "welcome", str(event), "--json", api=api)
    assert result.returncode == 0, result.stderr
    trace = json.loads(result.stdout)
    assert trace["decision"] == "would_send" and trace["body"] == "Welcome Ada!"
    assert trace["encoding"] == "GSM-7" and trace["segments"] == 1
    human = served.run("test", "welcome", str(event), api=api)
    assert "would_send" in human.stdout and "Welcome Ada!" in human.stdout

    other = tmp_path / "other.json"
    other.write_text(json.dumps(posthog_webhook(event="logged in", phone=to)))
    not_matched = served.run("test", "welcome", str(other), "--json", api=api)
    assert not_matched.returncode == 5
    assert json.loads(not_matched.stdout)["decision"] == "not_matched"
    assert served.run("test", "nobody", str(event), api=api).returncode == 3
    other.write_text("[1]")
    assert served.run("test", "welcome", str(other), api=api).returncode == 2
    new_texts(served, before, 0)  # a trace sends nothing

    sent = served.run("test", "welcome", str(event), "--send", "--json", api=api)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["decision"] == "sent"
    new_texts(served, before, 1)


@API
def test_reload_reaches_serve(served: Served, api: bool) -> None:
    to = phone("reload", api)
    with destinations_restored(served):
        served.destinations.write_text(DESTINATIONS.replace("Welcome", "Hello"))
        result = served.run("reload", "--json", api=api)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["destinations"] == 1
        time.sleep(0.5)  # serve polls the generation every 0.1 s
        assert served.wait_status(served.post_event(to), "sent")["body"] == "Hello Ada!"

        served.destinations.write_text("destinations:\n  - id: broken\n")
        refused = served.run("reload", api=api)
        assert refused.returncode == 4
        assert "running configuration is kept" in refused.stderr and ":2:" in refused.stderr
        time.sleep(0.5)
        assert served.wait_status(served.post_event(to), "sent")["body"] == "Hello Ada!"


def test_sighup_reloads(served: Served) -> None:
    to = phone("sighup")
    with destinations_restored(served):
        served.destinations.write_text(DESTINATIONS.replace("Welcome", "Howdy"))
        served.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while served.wait_status(served.post_event(to), "sent")["body"] != "Howdy Ada!":
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert served.process.poll() is None  # SIGHUP does not end serve


@API
def test_replay_from_the_command_line(served: Served, api: bool) -> None:
    since = datetime.now(UTC).isoformat()
    before = len(served.twilio.message_requests)
    served.twilio.enqueue(FakeTwilio.fail_with(400, 21211, "Invalid 'To' Phone Number"))
    failed = served.post_event(phone("replay", api))
    served.wait_status(failed, "failed")
    select = ["deliveries", "replay", "--since", since, "--error-code", "21211"]
    dry = served.run(*select, "--json", api=api)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["dry_run"], report["selected"], report["would_send"]) == (True, 1, 1)
    human = served.run(*select, api=api)
    assert failed in human.stdout and "add --send" in human.stderr
    real = served.run(*select, "--send", "--json", api=api)
    assert json.loads(real.stdout)["replayed"] == 1
    again = served.run(*select, "--send", "--json", api=api)
    assert json.loads(again.stdout)["items"][0]["reason"] == "already_replayed"
    new_texts(served, before, 2)  # the failed attempt and its one replay


def test_a_worker_survives_sighup(served: Served) -> None:
    # An extra worker on serve's embedded Redis: a deployment SIGHUPing every process
    # must not stop its workers (they have nothing to reload).
    data_dir = Path(served.env["SMS_DATA_DIR"])
    redis_url = (data_dir / "redis.url").read_text().strip()
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=REPO,
        env={**served.env, "SMS_REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    deadline = time.monotonic() + 30
    while "worker started" not in worker.stderr.readline():
        assert worker.poll() is None and time.monotonic() < deadline, "worker did not start"
    worker.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert worker.poll() is None
    worker.terminate()
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
