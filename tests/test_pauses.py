"""Paused destinations (issue 12 item 9, issue 13): a paused destination admits nothing
(`destination_paused`, said in words), its admitted deliveries are held and go out once
after the resume; Twilio codes whose action is to pause do it and page once; pause and
resume by API and CLI; the gauge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from app.cli import main as cli_main
from app.store import keys
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    REDIS_URL,
    REPO,
    RunningService,
    posthog_webhook,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio
from tests.test_cli import cli_env

Start = Callable[..., RunningService]
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

DESTINATIONS = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name }}!"
    from: "+15005550006"
  - id: oncall
    events: ["$sms_destination_paused"]
    to: "+14155550100"
    body: "{{ event.properties.detail }}"
    from: "+15005550006"
"""


def decide(service: RunningService, uuid: str, phone: str = "+14155552671") -> dict[str, Any]:
    answer = service.post_events(posthog_webhook(uuid=uuid, phone=phone))
    assert answer.status_code == 202, answer.text
    [delivery] = answer.json()["results"][0]["deliveries"]
    return delivery  # type: ignore[no-any-return]


def admin(service: RunningService, method: str, path: str, **kwargs: Any) -> Any:
    with service.admin() as client:
        return client.request(method, path, **kwargs)


def listed(service: RunningService, destination: str) -> dict[str, Any]:
    answer = admin(service, "GET", "/v1/destinations")
    assert answer.status_code == 200, answer.text
    [item] = [d for d in answer.json()["items"] if d["id"] == destination]
    return item  # type: ignore[no-any-return]


def to_numbers(fake_twilio: FakeTwilio) -> list[str]:
    return [r.form["To"] for r in fake_twilio.message_requests]


def test_a_paused_destination_admits_nothing_and_says_since_why_until_and_how(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    answer = admin(
        service,
        "POST",
        "/v1/destinations/welcome/pause",
        json={"reason": "new template under review", "until": until.isoformat()},
    )
    assert answer.status_code == 200, answer.text
    state = answer.json()
    assert state["paused"] is True and state["pause"]["by"] == "operator"
    assert listed(service, "welcome")["pause"]["reason"] == "new template under review"
    assert listed(service, "oncall")["pause"] is None

    paused = decide(service, "e-1")
    assert paused["decision"] == "destination_paused"
    match = re.fullmatch(
        rf"destination welcome paused since ({ISO}) by an operator: new template under "
        rf"review; until ({ISO}) \(it ends by itself\) or until resumed \(POST "
        r"/v1/destinations/welcome/resume or `smsdest destinations resume welcome`\)",
        paused["detail"],
    )
    assert match, paused["detail"]
    assert datetime.fromisoformat(match[2].replace("Z", "+00:00")) == until
    record = service.delivery(paused["delivery_id"])
    assert record["status"] == "skipped" and record["reason"] == "destination_paused"
    # An operator's pause pages nobody (the operator knows).
    time.sleep(0.3)
    assert fake_twilio.message_requests == []

    resumed = admin(service, "POST", "/v1/destinations/welcome/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    sent = decide(service, "e-2")
    assert sent["decision"] == "queued"
    service.wait_for_status(sent["delivery_id"], "sent")
    assert listed(service, "welcome")["pause"] is None


def test_a_bounded_pause_ends_by_itself(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False)
    until = datetime.now(UTC) + timedelta(seconds=1)
    answer = admin(
        service, "POST", "/v1/destinations/welcome/pause", json={"until": until.isoformat()}
    )
    assert answer.status_code == 200, answer.text
    assert decide(service, "b-1")["decision"] == "destination_paused"
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.1)
    assert decide(service, "b-2")["decision"] == "queued"
    assert listed(service, "welcome")["pause"] is None


def test_pause_and_resume_refuse_unknown_destinations_and_bad_input(
    start_service: Start,
) -> None:
    service = start_service(DESTINATIONS, run_worker=False)
    for action in ("pause", "resume"):
        answer = admin(service, "POST", f"/v1/destinations/nope/{action}")
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "detail": "no destination with id 'nope'"}
    past = admin(
        service,
        "POST",
        "/v1/destinations/welcome/pause",
        json={"until": "2020-01-01T00:00:00Z"},
    )
    assert past.status_code == 422
    assert past.json()["detail"][0]["field"] == "until"
    naive = admin(
        service, "POST", "/v1/destinations/welcome/pause", json={"until": "2999-01-01T00:00"}
    )
    assert naive.status_code == 422
    unknown = admin(service, "POST", "/v1/destinations/welcome/pause", json={"why": "x"})
    assert unknown.status_code == 422
    assert listed(service, "welcome")["pause"] is None
    no_token = service.client(None).post("/v1/destinations/welcome/pause")
    assert no_token.status_code == 401


def test_admitted_deliveries_are_held_while_paused_and_sent_once_after_resume(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # Admitted while no worker runs; then paused; then a worker starts.
    api = start_service(DESTINATIONS, run_worker=False)
    admitted = [decide(api, f"h-{i}", phone=f"+1415555{i:04d}") for i in range(5)]
    assert {a["decision"] for a in admitted} == {"queued"}
    assert admin(api, "POST", "/v1/destinations/welcome/pause").status_code == 200
    worker = start_service(DESTINATIONS)
    for a in admitted:
        held = worker.wait_for_status(a["delivery_id"], "held")
        assert held["history"][-1]["detail"] == "destination paused: held until it resumes"
    time.sleep(0.5)
    assert fake_twilio.message_requests == []
    assert redis_client.zcard(keys.held_for("welcome")) == 5
    # Held, not lost: nothing of it expires while it waits.
    assert all(redis_client.ttl(keys.delivery(a["delivery_id"])) == -1 for a in admitted)

    resumed = admin(api, "POST", "/v1/destinations/welcome/resume").json()
    assert resumed["released"] == 5
    for a in admitted:
        worker.wait_for_status(a["delivery_id"], "sent")
    time.sleep(0.3)
    assert sorted(to_numbers(fake_twilio)) == sorted(f"+1415555{i:04d}" for i in range(5))
    assert redis_client.exists(keys.held_for("welcome")) == 0


def test_a_held_delivery_still_obeys_its_lifetime(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    yaml_text = DESTINATIONS.replace(
        '    from: "+15005550006"\n  - id: oncall',
        '    from: "+15005550006"\n    validity: 1\n  - id: oncall',
    )
    api = start_service(yaml_text, run_worker=False)
    admitted = decide(api, "life-1")
    assert admin(api, "POST", "/v1/destinations/welcome/pause").status_code == 200
    worker = start_service(yaml_text)
    worker.wait_for_status(admitted["delivery_id"], "held")
    time.sleep(1.2)
    admin(api, "POST", "/v1/destinations/welcome/resume")
    expired = worker.wait_for_status(admitted["delivery_id"], "expired")
    assert "not sent late" in expired["history"][-1]["detail"]
    assert fake_twilio.message_requests == []


def test_bad_credentials_pause_the_destination_hold_the_message_and_page_once(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # Twilio refuses the first two creates with 20003 (two sends in flight see it).
    fake_twilio.enqueue(
        fake_twilio.fail_with(401, 20003, "Authenticate"),
        fake_twilio.fail_with(401, 20003, "Authenticate"),
    )
    service = start_service(DESTINATIONS)
    first = decide(service, "c-1", phone="+14155550001")
    held = service.wait_for_status(first["delivery_id"], "held")
    assert held["error_code"] == 20003
    assert "destination paused: held until it resumes" in held["history"][-1]["detail"]
    pause = listed(service, "welcome")["pause"]
    assert pause["by"] == "error_code" and pause["code"] == 20003
    assert pause["reason"] == "the Twilio credentials were refused"
    assert pause["until"] is None

    later = decide(service, "c-2", phone="+14155550002")
    assert later["decision"] == "destination_paused"
    assert "after Twilio error 20003: the Twilio credentials were refused" in later["detail"]

    # $sms_destination_paused reached the on-call destination, once.
    deadline = time.monotonic() + 10
    while "+14155550100" not in to_numbers(fake_twilio) and time.monotonic() < deadline:
        time.sleep(0.05)
    page = [r for r in fake_twilio.message_requests if r.form["To"] == "+14155550100"]
    assert len(page) == 1
    assert "paused since" in page[0].form["Body"] and "20003" in page[0].form["Body"]

    # Credentials fixed: resume; the held message goes, once.
    admin(service, "POST", "/v1/destinations/welcome/resume")
    sent = service.wait_for_status(first["delivery_id"], "sent")
    assert sent["attempts"] == 2
    time.sleep(0.3)
    assert to_numbers(fake_twilio).count("+14155550001") == 2  # the refused one, the sent one
    assert len([n for n in to_numbers(fake_twilio) if n == "+14155550100"]) == 1


def test_a_system_events_own_delivery_never_pauses_or_pages(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(DESTINATIONS)
    fake_twilio.enqueue(fake_twilio.fail_with(401, 20003, "Authenticate"))
    with service.client() as client:
        # An event named like the service's own: its delivery is a system event's.
        body = posthog_webhook(
            uuid="sys-1", event="$sms_destination_paused", properties={"detail": "paused"}
        )
        answer = client.post("/v1/events", json=body)
    [delivery] = answer.json()["results"][0]["deliveries"]
    failed = service.wait_for_status(delivery["delivery_id"], "failed")
    assert failed["error_code"] == 20003
    assert listed(service, "oncall")["pause"] is None
    time.sleep(0.3)
    assert len(fake_twilio.message_requests) == 1


def test_the_cli_pauses_and_resumes_through_redis_and_the_api(
    start_service: Start, monkeypatch: Any, capsys: Any
) -> None:
    service = start_service(DESTINATIONS, run_worker=False)
    settings = service.settings
    monkeypatch.setenv("SMS_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("SMS_DESTINATIONS_FILE", str(settings.destinations_file))
    cli_main(["destinations", "pause", "welcome", "--reason", "cli test", "--json"])
    state = json.loads(capsys.readouterr().out)
    assert state["paused"] is True and state["pause"]["reason"] == "cli test"
    assert listed(service, "welcome")["pause"]["reason"] == "cli test"
    assert decide(service, "cli-1")["decision"] == "destination_paused"

    monkeypatch.setenv("SMS_API_URL", service.base_url)
    monkeypatch.setenv("SMS_ADMIN_TOKEN", settings.admin_token.get_secret_value())  # type: ignore[union-attr]
    cli_main(["destinations", "resume", "welcome", "--json"])
    state = json.loads(capsys.readouterr().out)
    assert state == {"destination": "welcome", "paused": False, "pause": None, "released": 0}
    assert decide(service, "cli-2")["decision"] == "queued"
    try:
        cli_main(["destinations", "pause", "nope"])
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("an unknown destination must exit 3")


def test_the_gauge_counts_paused_destinations(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False)

    def gauge() -> float:
        text = admin(service, "GET", "/metrics").text
        [line] = [x for x in text.splitlines() if x.startswith("smsdest_paused_destinations ")]
        return float(line.split()[1])

    assert gauge() == 0
    admin(service, "POST", "/v1/destinations/welcome/pause")
    admin(service, "POST", "/v1/destinations/oncall/pause")
    assert gauge() == 2
    admin(service, "POST", "/v1/destinations/oncall/resume")
    assert gauge() == 1


def test_the_tester_shows_the_pause(start_service: Start) -> None:
    service = start_service(DESTINATIONS, run_worker=False)
    admin(service, "POST", "/v1/destinations/welcome/pause", json={"reason": "tester"})
    answer = admin(
        service,
        "POST",
        "/v1/destinations/welcome/test",
        json={"event": posthog_webhook(uuid="t-1")},
    )
    assert answer.status_code == 200, answer.text
    trace = answer.json()
    assert trace["decision"] == "destination_paused"
    assert "paused since" in trace["detail"] and "tester" in trace["detail"]


def test_an_extra_worker_process_pauses_and_pages_through_its_own_ingest(
    start_service: Start, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    fake_twilio.enqueue(fake_twilio.fail_with(401, 20003, "Authenticate"))
    service = start_service(DESTINATIONS, run_worker=False)  # API only
    first = decide(service, "w-1")
    env = cli_env(
        SMS_REDIS_URL=REDIS_URL,
        SMS_DESTINATIONS_FILE=str(write_destinations(tmp_path, DESTINATIONS)),
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
        service.wait_for_status(first["delivery_id"], "held", timeout=15)
        deadline = time.monotonic() + 15
        while "+14155550100" not in to_numbers(fake_twilio) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert to_numbers(fake_twilio) == ["+14155552671", "+14155550100"]
        assert listed(service, "welcome")["pause"]["code"] == 20003
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=15)
    assert worker.returncode == 0, output
