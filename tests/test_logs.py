"""Logs: `smsdest serve` at DEBUG through the whole flow writes one JSON object per line,
a line per decision and per send attempt with request id, delivery id, destination and
masked recipient; and no secret appears in any log line or response."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from twilio.request_validator import RequestValidator

from app.logs import JsonFormatter, TextFormatter, request_id
from bench.procs import free_port
from tests.conftest import (
    ACCOUNT_SID,
    ADMIN_TOKEN,
    AUTH_TOKEN,
    INGEST_TOKEN,
    REDIS_URL,
    REPO,
    posthog_webhook,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio
from tests.test_cli import cli_env

PUBLIC = "https://sms.example.com"
API_KEY = "SK" + "b2" * 16
API_SECRET = "api-secret-0123456789abcdef"
METRICS_TOKEN = "metrics-secret-for-tests"
SECRETS = [INGEST_TOKEN, ADMIN_TOKEN, AUTH_TOKEN, API_SECRET, METRICS_TOKEN]
NUMBER = "+14155552671"

DESTINATIONS = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name }}!"
    from: "+15005550006"
"""


@pytest.fixture
def served(
    tmp_path: Path, fake_twilio: FakeTwilio, redis_client: Any
) -> Iterator[tuple[str, Path]]:
    """`smsdest serve` (API + worker) at DEBUG, JSON logs to a file; Twilio is the fake,
    reached with an API key (the auth token signs the webhooks)."""
    port = free_port()
    log_file = tmp_path / "serve.log"
    env = cli_env(
        SMS_LOG_LEVEL="DEBUG",
        SMS_LOG_FORMAT="json",
        SMS_REDIS_URL=REDIS_URL,
        SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, DESTINATIONS)),
        SMS_TEMPLATES_DIR=str(REPO / "templates"),
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
        SMS_PUBLIC_BASE_URL=PUBLIC,
        SMS_INGEST_TOKEN=INGEST_TOKEN,
        SMS_ADMIN_TOKEN=ADMIN_TOKEN,
        SMS_METRICS_TOKEN=METRICS_TOKEN,
        SMS_RETRY_BASE_DELAY="0.01",
        SMS_RETRY_MAX_DELAY="0.05",
        SMS_PORT=str(port),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_KEY=API_KEY,
        TWILIO_API_SECRET=API_SECRET,
    )
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        yield base_url, log_file
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def signed(path: str, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}{path}", form)
    return form, {"X-Twilio-Signature": signature}


def wait_status(client: httpx.Client, delivery_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        record: dict[str, Any] = client.get(f"/v1/deliveries/{delivery_id}").json()
        if record["status"] in statuses or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def test_whole_flow_at_debug_logs_no_secret(
    served: tuple[str, Path], fake_twilio: FakeTwilio
) -> None:
    base_url, log_file = served
    ingest = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    anonymous = httpx.Client(base_url=base_url)
    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> httpx.Response:
        responses.append(response)
        return response

    # Ingest: the caller's request id is echoed and carried by the decision's line.
    first = keep(
        ingest.post("/v1/events", json=posthog_webhook(), headers={"X-Request-ID": "req-abc.1"})
    )
    assert first.status_code == 202 and first.headers["x-request-id"] == "req-abc.1"
    delivery_id = first.json()["results"][0]["deliveries"][0]["delivery_id"]
    sent = wait_status(admin, delivery_id, "sent")
    assert sent["status"] == "sent"
    # A request id that does not look like one is replaced by a generated one.
    dup = keep(ingest.post("/v1/events", json=posthog_webhook(), headers={"X-Request-ID": "a b"}))
    assert dup.json()["results"][0]["deliveries"][0]["decision"] == "duplicate"
    generated = dup.headers["x-request-id"]
    assert len(generated) == 16 and generated != "a b"

    # A retried send (429) and a failed one (21211).
    fake_twilio.enqueue(
        FakeTwilio.fail_with(429, 20429, "Too Many Requests"),
        FakeTwilio.fail_with(400, 21211, "Invalid 'To' Phone Number"),
    )
    retried = keep(
        ingest.post("/v1/events", json=posthog_webhook(uuid="e-2", phone="+14155550002"))
    )
    retried_id = retried.json()["results"][0]["deliveries"][0]["delivery_id"]
    assert wait_status(admin, retried_id, "failed")["status"] == "failed"

    # Status callback (signed), a bad signature, an inbound STOP.
    form, headers = signed(
        "/v1/twilio/status",
        {"MessageSid": sent["twilio_sid"], "MessageStatus": "delivered", "To": NUMBER,
         "From": "+15005550006", "AccountSid": ACCOUNT_SID},
    )  # fmt: skip
    assert keep(anonymous.post("/v1/twilio/status", data=form, headers=headers)).is_success
    forged = keep(
        anonymous.post("/v1/twilio/status", data=form, headers={"X-Twilio-Signature": "x"})
    )
    assert forged.status_code == 403
    form, headers = signed(
        "/v1/twilio/inbound",
        {"MessageSid": "SM" + "7" * 32, "From": NUMBER, "To": "+15005550006", "Body": "STOP"},
    )
    assert keep(anonymous.post("/v1/twilio/inbound", data=form, headers=headers)).is_success
    opted = keep(ingest.post("/v1/events", json=posthog_webhook(uuid="e-3")))
    assert opted.json()["results"][0]["deliveries"][0]["decision"] == "opted_out"

    # Messages API, deliveries, destinations, the tester, metrics.
    message = keep(
        admin.post(
            "/v1/messages", json={"to": "+14155550003", "body": "hi", "from": "+15005550006"}
        )
    )
    assert message.status_code == 202
    message_record = wait_status(admin, message.json()["delivery_id"], "sent")
    keep(admin.get(f"/v1/messages/{message_record['twilio_sid']}"))
    keep(admin.get("/v1/messages"))
    keep(admin.get("/v1/deliveries"))
    keep(admin.get(f"/v1/deliveries/{delivery_id}"))
    keep(admin.get("/v1/destinations"))
    keep(admin.post("/v1/destinations/welcome/test", json={"event": posthog_webhook(uuid="t")}))
    keep(admin.get("/v1/suppressions"))
    metrics = keep(anonymous.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}))
    assert metrics.status_code == 200

    # Error paths: wrong tokens, malformed input, an unknown delivery.
    wrong = {"Authorization": "Bearer wrong"}
    assert keep(anonymous.post("/v1/events", json={}, headers=wrong)).status_code == 401
    assert keep(anonymous.get("/v1/deliveries", headers=wrong)).status_code == 401
    assert keep(anonymous.get("/metrics")).status_code == 401
    assert keep(ingest.post("/v1/events", content=b"{not json")).status_code == 422
    assert keep(ingest.post("/v1/events", json={"event": {}})).status_code == 422
    assert keep(admin.get("/v1/deliveries/dl_0000000000000000000000000000")).status_code == 404
    assert keep(admin.post("/v1/messages", json={"to": "x", "body": "b"})).status_code == 422

    time.sleep(0.3)  # the last lines reach the file
    lines = log_file.read_text().splitlines()
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert not [e for e in entries if "color_message" in e]  # uvicorn's, with escape codes
    assert any(e["level"] == "DEBUG" for e in entries)

    # No secret anywhere: log lines, response bodies, response headers; nor the Basic
    # credentials Twilio is called with.
    basic = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    texts = [*lines, *(r.text for r in responses), *(str(r.headers) for r in responses)]
    for secret in [*SECRETS, basic]:
        leaks = [text for text in texts if secret in text]
        assert leaks == [], f"{secret!r} appears in: {leaks[:3]}"
    assert not [line for line in lines if NUMBER in line], "an unmasked number in the logs"

    decisions = [e for e in entries if e["message"].startswith("decision ")]
    first_decision = next(e for e in decisions if e["delivery_id"] == delivery_id)
    assert first_decision["request_id"] == "req-abc.1"
    assert first_decision["destination"] == "welcome"
    assert first_decision["decision"] == "queued"
    assert first_decision["recipient"] == "+1415•••2671"
    assert any(e["decision"] == "duplicate" and e["request_id"] == generated for e in decisions)
    assert any(e["decision"] == "opted_out" for e in decisions)
    assert any(e["destination"] == "$api" and e["request_id"] for e in decisions)

    attempts = [e for e in entries if e["message"].startswith("send attempt ")]
    by_delivery = {(e["delivery_id"], e["attempt"], e["status"]) for e in attempts}
    assert (delivery_id, 1, "sent") in by_delivery
    assert {(retried_id, 1, "retrying"), (retried_id, 2, "failed")} <= by_delivery
    failed = next(e for e in attempts if e["status"] == "failed")
    assert (failed["http_status"], failed["error_code"]) == (400, 21211)
    assert all(e["recipient"].count("•") == 3 for e in attempts)


def test_text_and_json_formats_carry_the_same_fields() -> None:
    import logging

    record = logging.makeLogRecord(
        {"name": "app.x", "levelno": 20, "levelname": "INFO", "msg": "decision %s",
         "args": ("queued",), "delivery_id": "dl_1", "recipient": "+1415•••2671"}
    )  # fmt: skip
    token = request_id.set("r-1")
    try:
        as_json = orjson.loads(JsonFormatter().format(record))
        as_text = TextFormatter().format(record)
    finally:
        request_id.reset(token)
    assert as_json["message"] == "decision queued"
    assert (as_json["request_id"], as_json["delivery_id"]) == ("r-1", "dl_1")
    assert as_json["time"].endswith("Z")
    assert as_text.endswith(
        "INFO app.x: decision queued [request_id=r-1 delivery_id=dl_1 recipient=+1415•••2671]"
    )
