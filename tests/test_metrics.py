"""GET /metrics through the real service: every counter equals what the test sent, the
queue gauges equal what Redis holds, the token, and several processes on one host
(PROMETHEUS_MULTIPROC_DIR) reported as one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    ACCOUNT_SID,
    ADMIN_TOKEN,
    AUTH_TOKEN,
    INGEST_TOKEN,
    REDIS_URL,
    REPO,
    RunningService,
    posthog_webhook,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio, ScriptedResponse
from tests.test_cli import cli_env

Start = Callable[..., RunningService]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

DESTINATIONS = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome!"
    from: "+15005550006"
    throttle: {window: 1h}
  - id: vip
    events: [signed up]
    filters: [{key: plan, operator: exact, value: vip}]
    body: "Hello VIP"
    from: "+15005550006"
"""


def scrape(base_url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def matching(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name and v}


def phone(n: int) -> str:
    return f"+1415555{n:04d}"


def raw_posthog(uuid: str, number: str) -> dict[str, object]:
    return {
        "uuid": uuid,
        "event": "signed up",
        "distinct_id": "u",
        "properties": {"$set": {"phone": number}},
    }


def segment(message_id: str, number: str, plan: str = "pro") -> dict[str, object]:
    return {
        "type": "track",
        "event": "signed up",
        "userId": "u",
        "messageId": message_id,
        "properties": {"plan": plan},
        "context": {"traits": {"phone": number}},
    }


def uid(n: int) -> str:
    return f"0190e4c6-0000-7000-8000-{n:012d}"


def test_counters_equal_what_was_sent(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(DESTINATIONS)
    # Twilio's answers, in order of the first three creates: a 429 (retried), a permanent
    # 21211; every other create succeeds.
    fake_twilio.enqueue(
        FakeTwilio.fail_with(429, 20429, "Too Many Requests"),
        FakeTwilio.fail_with(400, 21211, "Invalid 'To' Phone Number"),
    )
    answers = [
        service.post_events(posthog_webhook(uuid=uid(1), phone=phone(1))),
        service.post_events(posthog_webhook(uuid=uid(2), phone=phone(2))),
        service.post_events(posthog_webhook(uuid=uid(1), phone=phone(1))),  # duplicate
        service.post_events(posthog_webhook(uuid=uid(3), phone=phone(1))),  # throttled
        service.post_events(posthog_webhook(uuid=uid(4), phone="not a number")),
        service.post_events(raw_posthog(uid(5), phone(5))),
        # A Segment batch: one plain, one VIP (welcome and vip both match it).
        service.post_events(
            {"batch": [segment("m-6", phone(6)), segment("m-7", phone(7), plan="vip")]}
        ),
    ]
    assert [a.status_code for a in answers] == [202] * 7
    queued = [
        d["delivery_id"]
        for a in answers
        for r in a.json()["results"]
        for d in r["deliveries"]
        if d["decision"] == "queued"
    ]
    assert len(queued) == 6  # welcome ×5 (1, 2, 5, 6, 7) + vip ×1 (7)
    finals = [service.wait_for_status(d, "sent", "failed") for d in queued]
    assert sorted(r["status"] for r in finals) == ["failed"] + ["sent"] * 5

    samples = scrape(service.base_url)
    assert matching(samples, "smsdest_events_received_total") == {
        frozenset({("shape", "posthog_webhook")}): 5,
        frozenset({("shape", "posthog_event")}): 1,
        frozenset({("shape", "segment_track")}): 2,
    }
    assert matching(samples, "smsdest_decisions_total") == {
        frozenset({("destination", "welcome"), ("decision", "queued")}): 5,
        frozenset({("destination", "welcome"), ("decision", "duplicate")}): 1,
        frozenset({("destination", "welcome"), ("decision", "throttled")}): 1,
        frozenset({("destination", "welcome"), ("decision", "invalid_recipient")}): 1,
        frozenset({("destination", "vip"), ("decision", "queued")}): 1,
    }
    # 7 creates at Twilio: 6 deliveries, one of them retried after the 429.
    assert matching(samples, "smsdest_twilio_requests_total") == {
        frozenset({("http_status", "201"), ("error_code", "")}): 5,
        frozenset({("http_status", "429"), ("error_code", "20429")}): 1,
        frozenset({("http_status", "400"), ("error_code", "21211")}): 1,
    }
    assert len(fake_twilio.message_requests) == 7
    sends = matching(samples, "smsdest_sends_total")
    assert sum(sends.values()) == 7
    assert sends[frozenset({("destination", "welcome"), ("status", "retrying")})] == 1
    assert sends[frozenset({("destination", "welcome"), ("status", "failed")})] == 1
    assert value(samples, "smsdest_send_duration_seconds_count") == 7
    # Event-to-send: the deliveries sent at their first attempt (not the retried one).
    assert value(samples, "smsdest_event_to_send_seconds_count") == 4
    assert 0 < value(samples, "smsdest_event_to_send_seconds_sum") < 4 * 5
    assert value(samples, "smsdest_send_outcome_unknown_total") == 0
    # Everything was sent: the queue is empty.
    assert value(samples, "smsdest_queue_depth") == 0
    assert value(samples, "smsdest_queue_oldest_age_seconds") == 0
    assert value(samples, "smsdest_deliveries_waiting", status="retrying") == 0


def test_queue_gauges_are_read_from_redis_at_scrape_time(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False)  # nobody consumes the queue
    for n in range(3):
        assert service.post_events(posthog_webhook(uuid=uid(n), phone=phone(n))).status_code == 202
    time.sleep(0.3)
    samples = scrape(service.base_url)
    assert value(samples, "smsdest_redis_up") == 1
    assert value(samples, "smsdest_queue_depth") == 3
    assert value(samples, "smsdest_deliveries_waiting", status="queued") == 3
    assert value(samples, "smsdest_deliveries_waiting", status="sending") == 0
    assert 0.3 <= value(samples, "smsdest_queue_oldest_age_seconds") < 30


def test_deliveries_of_unknown_outcome_are_a_gauge(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # Twilio creates the message and drops the connection: the outcome is unknown until the
    # resolver asks Twilio's list, a minute later.
    fake_twilio.enqueue(ScriptedResponse(201, accept=True, drop=True))
    service = start_service(DESTINATIONS, twilio_list_delay=60)
    answer = service.post_events(posthog_webhook(uuid=uid(0), phone=phone(0)))
    delivery_id = answer.json()["results"][0]["deliveries"][0]["delivery_id"]
    service.wait_for_status(delivery_id, "unknown")
    samples = scrape(service.base_url)
    assert value(samples, "smsdest_deliveries_unknown") == 1
    assert value(samples, "smsdest_send_outcome_unknown_total", destination="welcome") == 1


def test_metrics_token(start_service: Start) -> None:
    service = start_service(DESTINATIONS, metrics_token="metrics-secret")
    assert httpx.get(f"{service.base_url}/metrics").status_code == 401
    wrong = httpx.get(f"{service.base_url}/metrics", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "unauthorized"
    assert "metrics-secret" not in wrong.text
    assert scrape(service.base_url, "metrics-secret")


def test_processes_of_one_host_report_together(tmp_path: Path, fake_twilio: FakeTwilio) -> None:
    """`serve --no-worker` and `smsdest worker` share PROMETHEUS_MULTIPROC_DIR: the serve
    process's /metrics counts the sends the worker process made."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    port = _free_port()
    env = cli_env(
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        SMS_REDIS_URL=REDIS_URL,
        SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, DESTINATIONS)),
        SMS_TEMPLATES_DIR=str(REPO / "templates"),
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
        SMS_INGEST_TOKEN=INGEST_TOKEN,
        SMS_ADMIN_TOKEN=ADMIN_TOKEN,
        SMS_PORT=str(port),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for argv in (["serve", "--no-worker"], ["worker"])
    ]
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url)
        headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
        for n in range(3):
            event = posthog_webhook(uuid=uid(n), phone=phone(n))
            assert httpx.post(f"{base_url}/v1/events", json=event, headers=headers).is_success
        fake_twilio.wait_for_requests(3, timeout=30)
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(base_url)
            sent = value(samples, "smsdest_sends_total", destination="welcome", status="sent")
            if sent == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sent == 3, samples  # counted by the worker process
        assert (
            value(samples, "smsdest_twilio_requests_total", http_status="201", error_code="") == 3
        )
        assert value(samples, "smsdest_events_received_total", shape="posthog_webhook") == 3
        assert value(samples, "smsdest_queue_depth") == 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


def _free_port() -> int:
    from bench.procs import free_port

    return free_port()


def _wait_ready(base_url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the service did not start")
        time.sleep(0.05)


def test_grafana_dashboard_uses_the_served_metric_names(start_service: Start) -> None:
    service = start_service(DESTINATIONS)
    text = httpx.get(f"{service.base_url}/metrics").text
    served = {
        re.sub(r"_total$", "", line.split()[2])
        for line in text.splitlines()
        if line.startswith("# TYPE ")
    }
    dashboard = json.loads((REPO / "deploy" / "grafana" / "smsdest.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for expr in exprs
        for name in re.findall(r"smsdest_[a-z_]+", expr)
    }
    assert len(exprs) >= 15 and len(used) >= 10
    assert used - served == set()
    # And every metric served is on the dashboard.
    assert {name for name in served if name.startswith("smsdest_")} - used == set()


def test_worker_serves_its_own_metrics_port(
    start_service: Start, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    """Per-process scraping: `smsdest worker` with SMS_METRICS_PORT answers /metrics (same
    token) with the sends it made, and still stops cleanly on SIGTERM."""
    service = start_service(DESTINATIONS, run_worker=False)  # API only: the worker sends
    port = _free_port()
    env = cli_env(
        SMS_REDIS_URL=REDIS_URL,
        SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, DESTINATIONS)),
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
        SMS_METRICS_PORT=str(port),
        SMS_METRICS_TOKEN="worker-metrics-secret",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url)
        for n in range(2):
            assert service.post_events(posthog_webhook(uuid=uid(n), phone=phone(n))).is_success
        fake_twilio.wait_for_requests(2, timeout=30)
        assert httpx.get(f"{base_url}/metrics").status_code == 401
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(base_url, "worker-metrics-secret")
            sent = value(samples, "smsdest_sends_total", destination="welcome", status="sent")
            if sent == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sent == 2, samples
        assert (
            value(samples, "smsdest_twilio_requests_total", http_status="201", error_code="") == 2
        )
        assert value(samples, "process_resident_memory_bytes") > 0  # its own process
        # The API process received the events; the worker counted none.
        assert value(samples, "smsdest_events_received_total", shape="posthog_webhook") == 0
        assert matching(scrape(service.base_url), "smsdest_sends_total") == {}
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=15)
    assert worker.returncode == 0, output
    assert "worker-metrics-secret" not in output


def test_counters_are_served_while_redis_is_down(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False, redis_url="redis://127.0.0.1:1/0")
    assert service.post_events(posthog_webhook()).status_code == 503  # nothing accepted
    samples = scrape(service.base_url)
    assert value(samples, "smsdest_redis_up") == 0
    assert ("smsdest_queue_depth", frozenset()) not in samples
    # The event was parsed and counted before admission failed.
    assert value(samples, "smsdest_events_received_total", shape="posthog_webhook") == 1
    assert value(samples, "process_resident_memory_bytes") > 0
