"""The `smsdest` command: extra workers and start-up refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    REDIS_URL,
    REPO,
    SIGNUP_DESTINATION,
    RunningService,
    posthog_webhook,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "TWILIO_"))}
    env.update(extra)
    return env


def test_extra_worker_process_sends(
    start_service: Start, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    service = start_service(SIGNUP_DESTINATION, run_worker=False)  # API only
    answer = service.post_events(posthog_webhook()).json()
    delivery_id = answer["results"][0]["deliveries"][0]["delivery_id"]
    env = cli_env(
        SMS_REDIS_URL=REDIS_URL,
        SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, SIGNUP_DESTINATION)),
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
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
    try:
        service.wait_for_status(delivery_id, "sent", timeout=15)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=15)
    assert worker.returncode == 0, output
    assert AUTH_TOKEN not in output
    assert "+14155552671" not in output  # numbers are masked in logs
    assert len(fake_twilio.message_requests) == 1


def test_worker_needs_a_redis_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=cli_env(SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, SIGNUP_DESTINATION))),
        check=False,
    )
    assert result.returncode == 2
    assert "SMS_REDIS_URL" in result.stderr


def test_serve_refuses_bad_settings_without_leaking_secrets(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=cli_env(
            SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, SIGNUP_DESTINATION)),
            TWILIO_ACCOUNT_SID="AC-not-a-sid",
            TWILIO_AUTH_TOKEN="super-secret-token",
            SMS_INGEST_TOKEN="i",
            SMS_ADMIN_TOKEN="a",
        ),
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert "TWILIO_ACCOUNT_SID must be" in result.stderr
    assert "super-secret-token" not in result.stderr


def test_serve_refuses_to_run_open_without_being_told(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=cli_env(SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, SIGNUP_DESTINATION))),
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SMS_INGEST_TOKEN is required" in result.stderr
