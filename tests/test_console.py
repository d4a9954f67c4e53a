"""The web console in a real browser: Debian's Chromium driven by Playwright against the
real service (uvicorn, real lifespan, real Redis, the fake Twilio over HTTP).

Logs in, visits every page, uses every form, checks what each page shows against the
JSON API, checks that every page refuses without a session and that a form without its
CSRF token is refused, and saves a screenshot of each page under artifacts/console/
(SMS_SCREENSHOTS_DIR overrides; `docs/console/` holds copies from one run, for the README).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.twilio.error_catalog import describe
from tests.conftest import ADMIN_TOKEN, REPO, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Not docs/console/ itself: a test run must not leave the work tree modified.
SCREENSHOTS = Path(os.environ.get("SMS_SCREENSHOTS_DIR") or REPO / "artifacts" / "console")
# Elements reaching past a 390 px screen, except content scrolling inside its own box.
WIDER_THAN_THE_SCREEN = """
[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 392
               && !(e.parentElement && e.parentElement.closest('.scroll')))
  .map(e => e.tagName + '.' + e.className)
"""

DESTINATIONS = """
destinations:
  - id: welcome
    name: Welcome text on sign-up
    events: [signed up]
    filters: [{key: plan, operator: exact, value: pro}]
    body: "Welcome {{ person.properties.name | default('friend') }}! Reply STOP to opt out."
    from: "+15005550006"
    throttle: {window: 1h}
  - id: receipts
    events: [order placed]
    mode: test
    body: "Order {{ event.properties.order }} confirmé ✅"
    messaging_service_sid: "MG0123456789abcdef0123456789abcdef"
  - id: reminder
    events: [trial ending]
    body: "Your trial ends tomorrow."
    from: "+15005550006"
    delay: 2h
"""

PAGES = [
    "/console",
    "/console/deliveries",
    "/console/destinations",
    "/console/destinations/welcome",
    "/console/tester",
    "/console/messages",
    "/console/suppressions",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _api(service: RunningService, path: str, **params: Any) -> Any:
    with service.admin() as client:
        response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _seed(service: RunningService, fake_twilio: FakeTwilio) -> dict[str, str]:
    """Deliveries in every interesting state: sent, failed (21608), skipped (opted out),
    mocked (a test-mode destination); a scheduled message at Twilio to cancel."""
    with service.admin() as admin:
        admin.post("/v1/suppressions", json={"number": "+14155550199"}).raise_for_status()
    fake_twilio.enqueue(
        # 21608 fails the message only (21211 would also suppress the number: no Resend)
        FakeTwilio.fail_with(400, 21608, "The number is unverified.")
    )
    failed = service.post_events(
        posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000a1", phone="+14155550123")
    )
    failed_id = failed.json()["results"][0]["deliveries"][0]["delivery_id"]
    service.wait_for_status(failed_id, "failed")
    sent = service.post_events(posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000a2"))
    sent_id = sent.json()["results"][0]["deliveries"][0]["delivery_id"]
    service.wait_for_status(sent_id, "sent")
    skipped = service.post_events(
        posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000a3", phone="+14155550199")
    )
    skipped_id = skipped.json()["results"][0]["deliveries"][0]["delivery_id"]
    order = posthog_webhook(
        uuid="0190e4c6-0000-7000-8000-0000000000a4", event="order placed", properties={"order": 42}
    )
    mocked_id = service.post_events(order).json()["results"][0]["deliveries"][0]["delivery_id"]
    service.wait_for_status(mocked_id, "mocked")
    reminder = posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000a5", event="trial ending")
    held_id = service.post_events(reminder).json()["results"][0]["deliveries"][0]["delivery_id"]
    scheduled = fake_twilio.add_message(to="+14155552671", body="Tomorrow at 9", status="scheduled")
    return {
        "failed": failed_id,
        "sent": sent_id,
        "skipped": skipped_id,
        "mocked": mocked_id,
        "held": held_id,
        "scheduled_sid": scheduled["sid"],
    }


def _login(page: Any, base: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{base}/console/login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Log in").click()


def _rows(page: Any, selector: str, attribute: str) -> list[str]:
    return [row.get_attribute(attribute) for row in page.locator(selector).all()]


def test_console_end_to_end(start_service: Any, fake_twilio: FakeTwilio, browser: Any) -> None:
    service: RunningService = start_service(DESTINATIONS)
    base = service.base_url
    seeded = _seed(service, fake_twilio)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    # Anything the browser refuses (a script or style the CSP blocks, a failed load) fails.
    browser_errors: list[str] = []
    page.on("console", lambda m: browser_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: browser_errors.append(str(e)))

    # --- every page refuses without a session: a redirect to the login form ---------------
    for path in [*PAGES, f"/console/deliveries/{seeded['failed']}"]:
        page.goto(base + path)
        assert re.search(r"/console/login\?next=", page.url), (path, page.url)
    with httpx.Client(base_url=base) as anonymous:
        login = anonymous.get("/console/login")
        assert "script-src 'self'" in login.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        for path in PAGES:
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith(
                "/console/login"
            )
        refused = anonymous.post("/console/suppressions", data={"number": "+14155550100"})
        assert refused.status_code == 303 and refused.headers["location"] == "/console/login"
    _shot(page, "login")

    # --- login: a wrong token is refused, the right one opens the page asked for ----------
    page.goto(f"{base}/console/deliveries")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().startswith("That is not the admin token")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Log in").click()
    assert page.url == f"{base}/console/deliveries"
    cookie = next(c for c in context.cookies() if c["name"] == "smsdest_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert ADMIN_TOKEN not in cookie["value"]

    # --- deliveries: the log as the API lists it; each filter ------------------------------
    listed = _api(service, "/v1/deliveries")["items"]
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == [d["id"] for d in listed]
    _shot(page, "deliveries")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    failed_api = _api(service, "/v1/deliveries", status="failed")["items"]
    assert (
        _rows(page, "#delivery-rows tr[data-id]", "data-id")
        == [d["id"] for d in failed_api]
        == [seeded["failed"]]
    )
    page.goto(f"{base}/console/deliveries?error_code=21608")
    by_code = _api(service, "/v1/deliveries", error_code=21608)["items"]
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == [d["id"] for d in by_code]
    assert [d["id"] for d in by_code] == [seeded["failed"]]
    page.goto(f"{base}/console/deliveries?recipient=%2B14155550199")
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == [seeded["skipped"]]
    page.goto(f"{base}/console/deliveries?destination=receipts")
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == [seeded["mocked"]]
    page.goto(f"{base}/console/deliveries?since=2000-01-01T00:00:00&until=2000-01-02T00:00:00")
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == []
    assert (
        _api(service, "/v1/deliveries", since="2000-01-01T00:00:00", until="2000-01-02")["items"]
        == []
    )
    page.goto(f"{base}/console/deliveries?since=2000-01-01T00:00:00")
    assert len(_rows(page, "#delivery-rows tr[data-id]", "data-id")) == len(listed)
    # A range around the sent one's creation time holds it and what came in that second.
    created = service.delivery(seeded["sent"])["created_at"][:19]
    page.goto(f"{base}/console/deliveries?since={created}&until={created}.999")
    in_range = _api(service, "/v1/deliveries", since=created, until=created + ".999")["items"]
    assert _rows(page, "#delivery-rows tr[data-id]", "data-id") == [d["id"] for d in in_range]
    assert seeded["sent"] in [d["id"] for d in in_range]

    # --- one delivery: event, body, encoding, segments, timeline, Twilio's words -----------
    failed = service.delivery(seeded["failed"])
    page.goto(f"{base}/console")
    page.get_by_role("link", name="Deliveries").click()
    page.locator(f'tr[data-id="{seeded["failed"]}"] a').click()
    assert page.get_by_test_id("status").inner_text() == "failed"
    assert page.get_by_test_id("body").inner_text() == failed["body"]
    assert page.get_by_test_id("encoding").inner_text() == failed["encoding"]
    assert page.get_by_test_id("segments").inner_text() == str(failed["segments"])
    assert page.get_by_test_id("error").inner_text().startswith("21608: The number is unverified")
    assert page.get_by_test_id("error-words").inner_text() == describe(21608)
    assert page.locator('[data-testid="timeline"] li').count() == len(failed["history"])
    _shot(page, "delivery")
    mocked = service.delivery(seeded["mocked"])
    page.goto(f"{base}/console/deliveries/{seeded['mocked']}")
    assert page.get_by_test_id("encoding").inner_text() == mocked["encoding"] == "UCS-2"
    assert page.get_by_role("button", name="Resend").count() == 0  # only failed ones resend

    # --- a message we hold until its time: cancel it from its page --------------------------
    page.goto(f"{base}/console/deliveries/{seeded['held']}")
    assert page.get_by_test_id("status").inner_text() == "scheduled"
    page.get_by_role("button", name="Cancel this scheduled message").click()
    assert page.get_by_role("status").inner_text() == "Canceled: canceled."
    assert page.get_by_test_id("status").inner_text() == "canceled"
    assert service.delivery(seeded["held"])["status"] == "canceled"

    # --- resend: a new delivery through admission; twice sends once -------------------------
    page.goto(f"{base}/console/deliveries/{seeded['failed']}")
    page.get_by_role("button", name="Resend").click()
    assert page.get_by_role("status").inner_text().startswith("Resend: queued")
    resent_id = page.url.rsplit("/", 1)[1]
    assert resent_id != seeded["failed"]
    resent = service.wait_for_status(resent_id, "sent")
    assert resent["detail"] == f"replay of delivery {seeded['failed']}"
    assert resent["recipient"] == failed["recipient"] and resent["body"] == failed["body"]
    page.goto(f"{base}/console/deliveries/{seeded['failed']}")
    page.get_by_role("button", name="Resend").click()
    assert page.get_by_role("status").inner_text().startswith("Resend: duplicate")
    assert page.url.endswith(resent_id)
    assert len(fake_twilio.message_requests) == 3  # failed, sent, resent: nothing more

    # --- overview: counts as the API's log has them -----------------------------------------
    page.get_by_role("link", name="Overview").click()
    everything = _api(service, "/v1/deliveries")["items"]
    by_status = Counter(d["status"] for d in everything)
    day = page.get_by_test_id("window-2")
    for status, count in by_status.items():
        assert day.locator(f'tr[data-status="{status}"] td.num').inner_text() == str(count)
    assert (
        page.get_by_role("heading", name=f"Last 24 hours: {len(everything)} deliveries").count()
        == 1
    )
    assert page.locator('[data-reason="opted_out"]').first.inner_text() == "opted_out 1"
    # The worker acknowledges an entry just after recording its outcome: allow it a moment.
    deadline = time.monotonic() + 10
    while page.get_by_test_id("queue-depth").inner_text() != "0":
        assert time.monotonic() < deadline, "the queue never drained"
        page.reload()
    assert page.get_by_test_id("oldest-pending").inner_text() == "none"
    _shot(page, "overview")

    # --- destinations: what the API lists, with counts -------------------------------------
    page.get_by_role("link", name="Destinations").click()
    configured = _api(service, "/v1/destinations")["items"]
    assert _rows(page, "tbody tr[data-id]", "data-id") == [d["id"] for d in configured]
    welcome_total = sum(1 for d in everything if d["destination"] == "welcome")
    assert page.locator('tr[data-id="welcome"] [data-testid="total"]').inner_text() == str(
        welcome_total
    )
    _shot(page, "destinations")
    page.get_by_role("link", name="welcome", exact=True).click()
    assert page.get_by_test_id("events").inner_text() == "signed up"
    assert page.get_by_test_id("sender").inner_text() == "+15005550006"
    assert "plan exact" in page.get_by_test_id("filters").inner_text()
    welcome_counts = Counter(d["status"] for d in everything if d["destination"] == "welcome")
    for status, count in welcome_counts.items():
        assert page.locator(
            f'[data-testid="outcomes"] tr[data-status="{status}"] td'
        ).inner_text() == str(count)
    _shot(page, "destination")

    # --- pause and resume: the forms, the banner, the overview, as the API has them ------
    page.get_by_label("Reason").fill("template under review")
    page.get_by_role("button", name="Pause", exact=True).click()
    assert page.url == f"{base}/console/destinations/welcome"  # the box is required first
    page.get_by_role("checkbox", name="I confirm").check()
    page.get_by_role("button", name="Pause", exact=True).click()
    [listed] = [d for d in _api(service, "/v1/destinations")["items"] if d["id"] == "welcome"]
    assert listed["pause"]["reason"] == "template under review"
    assert (
        page.get_by_test_id("paused-banner").inner_text() == f"Paused: {listed['pause']['detail']}"
    )
    _shot(page, "destination-paused")
    page.goto(f"{base}/console")
    assert page.get_by_test_id("paused-count").inner_text() == "1"
    assert page.get_by_test_id("paused-destinations").inner_text() == (
        "welcome (template under review)"
    )
    page.goto(f"{base}/console/destinations")
    assert (
        page.locator('tr[data-id="welcome"] [data-testid="sending"]')
        .inner_text()
        .startswith("paused since " + listed["pause"]["since"])
    )
    row = page.locator('tr[data-id="welcome"]')
    row.get_by_role("checkbox", name="confirm").check()
    row.get_by_test_id("resume-welcome").click()
    assert page.get_by_role("status").inner_text() == (
        "welcome resumed: 0 held deliveries released."
    )
    assert [d["pause"] for d in _api(service, "/v1/destinations")["items"]] == [None] * 3
    assert page.locator('tr[data-id="welcome"] [data-testid="sending"]').inner_text() == "yes"
    page.goto(f"{base}/console/destinations/welcome")

    # --- tester: the trace the API gives; sending for real needs the confirmation ---------
    event = posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000b1", phone="+14155550142")
    with service.admin() as admin:
        expected = admin.post("/v1/destinations/welcome/test", json={"event": event}).json()
    page.get_by_role("link", name="Test it").click()
    page.get_by_label("Destination").select_option("welcome")
    page.get_by_role("textbox", name="Event").fill(json.dumps(event))
    page.get_by_role("button", name="Trace").click()
    assert page.get_by_test_id("decision").inner_text() == expected["decision"] == "would_send"
    assert page.get_by_test_id("trace-body").inner_text() == expected["body"]
    assert page.get_by_test_id("trace-recipient").inner_text() == expected["recipient"]
    assert page.get_by_test_id("trace-segments").inner_text() == str(expected["segments"])
    _shot(page, "tester")
    # Which filter failed, and an opted-out recipient, as the API's trace says them.
    for variant in (
        posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000b2", properties={"plan": "free"}),
        posthog_webhook(uuid="0190e4c6-0000-7000-8000-0000000000b3", phone="+14155550199"),
    ):
        with service.admin() as admin:
            want = admin.post("/v1/destinations/welcome/test", json={"event": variant}).json()
        page.get_by_role("textbox", name="Event").fill(json.dumps(variant))
        page.get_by_role("button", name="Trace").click()
        assert page.get_by_test_id("decision").inner_text() == want["decision"]
        matched = page.get_by_test_id("matched").inner_text()
        assert matched == ("yes" if want["matched"] else f"no: {want['unmatched_because']}")
        if want["detail"]:
            assert page.get_by_test_id("trace-detail").inner_text() == want["detail"]
    assert want["decision"] == "opted_out"

    # A recent event the service received loads into the form, and traces as the API does.
    row = page.locator('[data-testid="recent"] tr', has_text="0190e4c6-0000-7000-8000-0000000000a2")
    row.get_by_role("link").click()
    loaded = json.loads(page.get_by_role("textbox", name="Event").input_value())
    assert loaded["event"]["uuid"] == "0190e4c6-0000-7000-8000-0000000000a2"
    assert loaded["person"]["properties"]["phone"] == "+14155552671"
    page.get_by_role("button", name="Trace").click()
    with service.admin() as admin:
        again = admin.post("/v1/destinations/welcome/test", json={"event": loaded}).json()
    assert page.get_by_test_id("decision").inner_text() == again["decision"] == "throttled"
    page.get_by_role("textbox", name="Event").fill("{not json")
    page.get_by_role("button", name="Trace").click()
    assert page.get_by_role("alert").inner_text().startswith("The event is not JSON")
    page.get_by_role("textbox", name="Event").fill(json.dumps(event))
    page.get_by_role("button", name="Send for real").click()
    assert "confirmation" in page.get_by_role("alert").inner_text()
    assert len(fake_twilio.message_requests) == 3
    page.get_by_label("I confirm").check()
    page.get_by_role("button", name="Send for real").click()
    assert page.get_by_test_id("decision").inner_text() == "sent"
    assert fake_twilio.message_requests[-1].form["To"] == "+14155550142"

    # --- suppressions: list, add, search, remove, each checked against the API ------------
    page.get_by_role("link", name="Suppressions").click()
    listed_numbers = [s["number"] for s in _api(service, "/v1/suppressions")["items"]]
    assert sorted(_rows(page, "tbody tr[data-number]", "data-number")) == sorted(listed_numbers)
    page.get_by_label("Add a number").fill("(415) 555-0177")
    page.get_by_role("button", name="Suppress").click()
    assert page.get_by_role("status").inner_text() == "+14155550177 is suppressed."
    added = _api(service, "/v1/suppressions/+14155550177")
    assert added["source"] == "console"
    row = page.locator('tr[data-number="+14155550177"]')
    assert "opted out in the console" in row.inner_text()
    _shot(page, "suppressions")
    page.get_by_label("Search by digits").fill("0177")
    page.get_by_role("button", name="Search").click()
    assert _rows(page, "tbody tr[data-number]", "data-number") == ["+14155550177"]
    page.get_by_role("button", name="Remove +14155550177").click()
    assert page.get_by_role("status").inner_text() == "+14155550177 can be texted again."
    with service.admin() as admin:
        assert admin.get("/v1/suppressions/+14155550177").status_code == 404
    page.get_by_label("Add a number").fill("not a number")
    page.get_by_role("button", name="Suppress").click()
    assert "number" in page.get_by_role("alert").inner_text()
    page.go_back()

    # --- messages: Twilio's list as the API has it; cancel a scheduled one ----------------
    page.goto(f"{base}/console/messages")
    api_messages = _api(service, "/v1/messages")["items"]
    assert _rows(page, "tbody tr[data-sid]", "data-sid") == [m["sid"] for m in api_messages]
    _shot(page, "messages")
    sid = seeded["scheduled_sid"]
    page.get_by_role("button", name=f"Cancel {sid}").click()
    assert page.get_by_role("status").inner_text() == f"{sid} is canceled."
    assert _api(service, f"/v1/messages/{sid}")["status"] == "canceled"

    # --- a form without its CSRF token (or with another session's) is refused ------------
    for data in ({"number": "+14155550188"}, {"number": "+14155550188", "csrf_token": "forged"}):
        answer = page.request.post(f"{base}/console/suppressions", form=data, max_redirects=0)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    with service.admin() as admin:
        assert admin.get("/v1/suppressions/+14155550188").status_code == 404
    # Every other form too, each with what it would otherwise act on.
    requests_before = len(fake_twilio.requests)
    forms = {
        f"/console/deliveries/{seeded['failed']}/resend": {},
        f"/console/deliveries/{seeded['held']}/cancel": {},
        "/console/tester": {
            "destination": "welcome",
            "event": json.dumps(event),
            "action": "send",
            "confirm": "yes",
        },
        "/console/suppressions/remove": {"number": "+14155550199"},
        f"/console/messages/{seeded['scheduled_sid']}/cancel": {},
        "/console/destinations/welcome/pause": {"confirm": "yes"},
        "/console/destinations/welcome/resume": {"confirm": "yes"},
        "/console/logout": {},
        "/console/login": {"token": ADMIN_TOKEN},
    }
    for path, data in forms.items():
        answer = page.request.post(base + path, form=data, max_redirects=0)
        assert answer.status == 403, path
    assert len(fake_twilio.requests) == requests_before
    with service.admin() as admin:
        assert admin.get("/v1/suppressions/+14155550199").status_code == 200
    assert [d["pause"] for d in _api(service, "/v1/destinations")["items"]] == [None] * 3
    page.goto(f"{base}/console")  # still logged in: the refused logout did nothing
    assert page.url == f"{base}/console"

    # --- keyboard and screen readers: a skip link first; every control has a name ---------
    for path in PAGES:
        page.goto(base + path)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        unnamed = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                            && !e.textContent.trim()).map(e => e.outerHTML)"""
        )
        assert unnamed == [], (path, unnamed)

    # --- phone width: no page scrolls sideways (wide tables scroll inside their box) -----
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
    )
    small = phone.new_page()
    for path in PAGES:
        small.goto(base + path)
        wide = small.evaluate(WIDER_THAN_THE_SCREEN)
        assert small.evaluate("document.documentElement.scrollWidth") <= 390, (path, wide)
    small.goto(f"{base}/console/deliveries/{seeded['failed']}")
    _shot(small, "delivery-phone")
    small.goto(f"{base}/console")
    _shot(small, "overview-phone")
    phone.close()

    # --- Live: the log shows a new delivery without a reload ---------------------------------
    page.goto(f"{base}/console/deliveries")
    page.get_by_role("checkbox", name="Live").check()
    order = posthog_webhook(
        uuid="0190e4c6-0000-7000-8000-0000000000d1", event="order placed", properties={"order": 7}
    )
    new_id = service.post_events(order).json()["results"][0]["deliveries"][0]["delivery_id"]
    page.locator(f'tr[data-id="{new_id}"]').wait_for(timeout=15_000)
    assert page.get_by_role("checkbox", name="Live").is_checked()

    # The login form's wrong token (401), the refused forms (403) and the bad number (422)
    # are the only failed loads the browser saw.
    unexpected = [e for e in browser_errors if not re.search(r"status of (401|403|422)", e)]
    assert unexpected == []

    # --- logout ends the session ------------------------------------------------------------
    page.goto(f"{base}/console")
    page.get_by_role("button", name="Log out").click()
    assert page.url.startswith(f"{base}/console/login")
    page.goto(f"{base}/console/deliveries")
    assert "/console/login" in page.url
    context.close()
