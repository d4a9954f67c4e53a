"""Console pages over plain HTTP (no browser): what needs a state the browser test does not
set up — a queue no worker drains — and the answers to bad input."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, SIGNUP_DESTINATION, RunningService, posthog_webhook

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextlib.contextmanager
def _logged_in(service: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        yield _login(client)


def _login(client: httpx.Client) -> httpx.Client:
    form = client.get("/console/login")
    token = CSRF.search(form.text)
    assert token, form.text
    answer = client.post(
        "/console/login", data={"csrf_token": token.group(1), "token": ADMIN_TOKEN}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    return client


def test_overview_shows_the_queue_no_worker_drains(start_service: Any) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION, run_worker=False)
    for i in range(3):
        accepted = service.post_events(
            posthog_webhook(uuid=f"0190e4c6-0000-7000-8000-00000000000{i}")
        )
        assert accepted.status_code == 202
    with _logged_in(service) as client:
        page = client.get("/console").text
    assert re.search(r'data-testid="queue-depth">3<', page)
    assert re.search(r'data-testid="oldest-pending">\d+ s<', page)
    assert 'data-status="queued"' in page


def test_overview_counts_events_texts_and_segments(start_service: Any) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION)
    ids = []
    for i in range(3):
        answer = service.post_events(
            posthog_webhook(uuid=f"0190e4c6-0000-7000-8000-00000000001{i}")
        )
        ids.append(answer.json()["results"][0]["deliveries"][0]["delivery_id"])
    # Two events no destination listens to: received, never a delivery.
    for i in range(2):
        other = posthog_webhook(uuid=f"0190e4c6-0000-7000-8000-00000000002{i}", event="other")
        assert service.post_events(other).status_code == 202
    for delivery_id in ids:
        service.wait_for_status(delivery_id, "sent")
    with _logged_in(service) as client:
        deadline = time.monotonic() + 15  # each process adds its count every few seconds
        while 'data-testid="events-1">5<' not in (page := client.get("/console").text):
            assert time.monotonic() < deadline, "events received never reached 5"
            time.sleep(0.5)
    # One process flushed its count: the day's figure says the same.
    assert 'data-testid="events-2">5<' in page
    assert 'data-testid="texted-1">3<' in page and 'data-testid="segments-1">3<' in page
    assert 'data-testid="failed-1">0<' in page


def test_bad_input_is_a_page_saying_what_is_wrong(start_service: Any) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION)
    with _logged_in(service) as client:
        answer = client.get("/console/deliveries", params={"error_code": "abc"})
        assert answer.status_code == 422 and "error_code: must be a number" in answer.text
        answer = client.get("/console/deliveries", params={"since": "yesterday"})
        assert answer.status_code == 422 and "since: must be a date and time" in answer.text
        answer = client.get("/console/deliveries/dl_nope")
        assert answer.status_code == 404 and "no delivery with id" in answer.text
        answer = client.get("/console/destinations/nope")
        assert answer.status_code == 404
        answer = client.get("/console/suppressions", params={"cursor": "abc"})
        assert answer.status_code == 422 and "text/html" in answer.headers["content-type"]
        assert "cursor: " in answer.text
        csrf = CSRF.search(client.get("/console/tester").text).group(1)  # type: ignore[union-attr]
        answer = client.post(
            "/console/tester",
            data={"csrf_token": csrf, "destination": "welcome", "event": '{"event": 1}'},
        )
        assert answer.status_code == 422 and "not one this service accepts" in answer.text
        answer = client.post(
            "/console/tester",
            data={"csrf_token": csrf, "destination": "welcome", "event": "x" * 300_000},
        )
        assert answer.status_code == 422 and "over 262144 bytes" in answer.text


def test_with_the_admin_api_open_the_console_needs_no_login_but_forms_still_need_csrf(
    start_service: Any,
) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION, admin_auth="none", admin_token=None)
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        page = client.get("/console/suppressions")
        assert page.status_code == 200 and "Log out" not in page.text
        refused = client.post("/console/suppressions", data={"number": "+14155550100"})
        assert refused.status_code == 403
        csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        added = client.post(
            "/console/suppressions", data={"csrf_token": csrf, "number": "+14155550100"}
        )
        assert added.status_code == 303
        assert "+14155550100" in client.get("/console/suppressions").text


def test_the_log_pages_as_the_api_does(start_service: Any) -> None:
    service: RunningService = start_service(SIGNUP_DESTINATION)
    batch = [
        posthog_webhook(
            uuid=f"0190e4c6-0000-7000-8000-0000000001{i:02d}", phone=f"+141555501{i:02d}"
        )
        for i in range(55)
    ]
    assert service.post_events(batch).status_code == 202
    with service.admin() as admin:
        first = admin.get("/v1/deliveries", params={"limit": 50}).json()
        second = admin.get(
            "/v1/deliveries", params={"limit": 50, "cursor": first["next_cursor"]}
        ).json()
    rows = re.compile(r'<tr data-id="(dl_[0-9a-f]+)"')
    with _logged_in(service) as client:
        page = client.get("/console/deliveries").text
        assert rows.findall(page) == [d["id"] for d in first["items"]]
        older = re.search(r'href="/console/deliveries\?([^"]+)" rel="next"', page)
        assert older
        page = client.get("/console/deliveries?" + older.group(1).replace("&amp;", "&")).text
        assert rows.findall(page) == [d["id"] for d in second["items"]]
        assert len(second["items"]) == 5 and 'rel="next"' not in page
