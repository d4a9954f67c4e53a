"""One template or one filter cannot freeze the service or fill Redis, whatever the event."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from tests.conftest import RunningService, posthog_webhook

Start = Callable[..., RunningService]

HOSTILE = """
destinations:
  - id: slow
    events: [hostile]
    body: "{% for i in range(2000) %}{{ range(2000) | select('odd') | sum }}{% endfor %}"
    from: "+15005550006"
  - id: loops
    events: [hostile]
    body: "{% for i in range(2000) %}{% for j in range(2000) %}x{% endfor %}{% endfor %}"
    from: "+15005550006"
  - id: backtracking
    events: [hostile]
    filters: [{key: text, operator: regex, value: "^(a+)+$"}]
    body: "matched"
    from: "+15005550006"
  - id: huge
    events: [hostile]
    body: "{{ 'x' * 10**8 }}{{ 10**100000 }}"
    from: "+15005550006"
  - id: echo
    events: [hostile]
    body: "{{ event.properties.text }}"
    from: "+15005550006"
"""


def test_healthz_answers_while_hostile_events_are_processed(start_service: Start) -> None:
    service = start_service(HOSTILE, run_worker=False)
    batch = [
        posthog_webhook(uuid=f"h-{i}", event="hostile", properties={"text": "a" * 10_000 + "!"})
        for i in range(15)
    ]
    answers: list[httpx.Response] = []
    poster = threading.Thread(target=lambda: answers.append(service.post_events(batch)))
    latencies: list[float] = []
    with httpx.Client(base_url=service.base_url, timeout=5) as client:
        poster.start()
        while poster.is_alive():
            started = time.monotonic()
            assert client.get("/healthz").json() == {"status": "ok"}
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    poster.join()
    # Each of the 15 events costs ~100 ms of bounded rendering; /healthz never waits for them.
    assert len(latencies) >= 5
    assert max(latencies) < 0.5, latencies
    [answer] = answers
    assert answer.status_code == 202
    for result in answer.json()["results"]:
        details = {d["destination"]: d.get("detail", "") for d in result["deliveries"]}
        assert set(details) == {"slow", "loops", "huge", "echo"}  # no backtracking match
        assert "over the 100 ms a render may take" in details["slow"]
        assert "over the 2,000 loop iterations" in details["loops"]
        assert "100,000,000 characters is over the 100,000 allowed" in details["huge"]
        assert "body is 10001 characters" in details["echo"]


def test_a_95_mb_body_is_never_stored(start_service: Start, redis_client: redis.Redis) -> None:
    service = start_service(
        """
destinations:
  - {id: times, body: "{{ 'x' * 10**8 }}", from: "+15005550006"}
  - id: loop
    body: "{% for i in range(2000) %}{% set x = 'x' * 99999 %}{% endfor %}"
    from: "+15005550006"
  - {id: echo, body: "{{ event.properties.blob }}", from: "+15005550006"}
""",
        run_worker=False,
    )
    answer = service.post_events(posthog_webhook(properties={"blob": "y" * 900_000})).json()
    decided = {d["destination"]: d for d in answer["results"][0]["deliveries"]}
    assert {d["decision"] for d in decided.values()} == {"render_error"}
    assert "over the 100,000 allowed" in decided["times"]["detail"]
    assert "characters a render may build" in decided["loop"]["detail"]
    assert "output is over the 16,000 characters" in decided["echo"]["detail"]
    for delivery in decided.values():
        assert service.delivery(delivery["delivery_id"])["body"] is None
    largest = max(redis_client.memory_usage(key) or 0 for key in redis_client.scan_iter())
    assert largest < 20_000


def test_check_config_reports_hostile_constants_at_once(tmp_path: Path) -> None:
    # Jinja used to fold these while compiling: start-up and check-config never finished.
    path = tmp_path / "destinations.yaml"
    path.write_text(
        """
destinations:
  - {id: times, body: "{{ 'x' * 10**9 }}", from: "+15005550006"}
  - {id: power, body: "{{ 10**100000 }}", from: "+15005550006"}
  - {id: center, body: "{{ 'x' | center(999999999) }}", from: "+15005550006"}
  - {id: format, body: "{{ '%0999999999d' % 1 }}", from: "+15005550006"}
"""
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "smsdest"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SMS_TEMPLATES_DIR": str(tmp_path)},
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "OK, 4 destination(s)" in result.stdout
    assert time.monotonic() - started < 30
