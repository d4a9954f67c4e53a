"""The pumping guard's velocity limits and Twilio's pumping answers, end to end: through the
public ingest, the admission script and the real worker, counted at the fake Twilio."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.guard import HOUR_MS
from app.store import deliveries as deliveries_module
from app.store.records import now_ms
from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_twilio_webhooks import PUBLIC, signed_post, status_form

Start = Callable[..., RunningService]
ON_CALL = "+14155550100"
BLOCK = "+14155552"  # the attacked block: +14155552000 … +14155552999

ATTACKED = f"""
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome!"
    from: "+15005550006"
  - id: on-call
    events: [$sms_guard_triggered]
    to: "{ON_CALL}"
    body: "smsdest guard: {{{{ event.properties.detail }}}}"
    from: "+15005550006"
    velocity: false
"""


@pytest.fixture
def mid_hour(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Admission's clock five minutes into an hour, running at real speed: a test's
    counters never straddle an hour's end, whenever it runs."""
    real = now_ms()
    offset = real - (real - real % HOUR_MS + 5 * 60_000)
    monkeypatch.setattr(deliveries_module, "now_ms", lambda: now_ms() - offset)
    yield


def raw_event(number: str, uuid: str) -> dict[str, Any]:
    """A raw PostHog event whose person's phone comes from `$set`, as an attacker holding
    the project's public key would send it."""
    return {
        "uuid": uuid,
        "event": "signed up",
        "distinct_id": f"anon-{uuid}",
        "properties": {"$set": {"phone": number}},
    }


def decisions_of(service: RunningService, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = service.post_events(events)
    assert response.status_code == 202, response.text
    return [d for result in response.json()["results"] for d in result["deliveries"]]


def drained(fake: FakeTwilio, expected: int, settle: float = 1.0) -> list[str]:
    """The numbers texted, once `expected` requests came and nothing more for `settle` s."""
    fake.wait_for_requests(expected, timeout=20)
    time.sleep(settle)
    return [r.form["To"] for r in fake.message_requests]


@pytest.mark.usefixtures("mid_hour")
def test_the_pumping_attack(start_service: Start, fake_twilio: FakeTwilio) -> None:
    """1,000 numbers of one block through the public ingest in seconds (an attack's ten
    minutes, compressed): the block's limit (10) is texted, the rest refused, and the
    on-call number is texted once."""
    service = start_service(ATTACKED)
    decisions: list[dict[str, Any]] = []
    for start in range(0, 1000, 100):
        batch = [raw_event(f"{BLOCK}{i:03d}", f"attack-{i}") for i in range(start, start + 100)]
        decisions += decisions_of(service, batch)
    counts = Counter(d["decision"] for d in decisions)
    assert counts == {"queued": 10, "blocked_velocity": 990}
    refused = next(d for d in decisions if d["decision"] == "blocked_velocity")
    assert refused["detail"].startswith(
        f"velocity: 10 first-time recipients this hour in block {BLOCK}xxx "
        "(destination 'welcome'), the limit is 10; new numbers there wait until "
    )
    texted = drained(fake_twilio, 11)
    assert Counter(number[: len(BLOCK)] == BLOCK for number in texted) == {True: 10, False: 1}
    assert texted.count(ON_CALL) == 1
    [page] = [r for r in fake_twilio.message_requests if r.form["To"] == ON_CALL]
    assert page.form["Body"].startswith("smsdest guard: velocity: 10 first-time recipients")
    # A second wave in the same hour: nothing more is sent, nobody is paged again.
    more = [raw_event(f"{BLOCK}{i:03d}", f"again-{i}") for i in range(500, 600)]
    assert {d["decision"] for d in decisions_of(service, more)} == {"blocked_velocity"}
    assert len(drained(fake_twilio, 11)) == 11


@pytest.mark.usefixtures("mid_hour")
def test_known_numbers_pass_and_limits_are_per_destination_and_overall(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    """A first-time recipient is one the service never texted: counted by the destination
    that texts it first, for that destination and overall."""
    service = start_service(
        """
destinations:
  - {id: b, body: hi, from: "+15005550006", velocity: {per_block: 1}}
  - {id: a, body: hi, from: "+15005550006"}
  - {id: c, body: hi, from: "+15005550006", velocity: false}
""",
        velocity_per_block=3,
    )

    def decide(number: str, uuid: str) -> list[str]:
        return [d["decision"] for d in decisions_of(service, [raw_event(number, uuid)])]

    # Each event reaches b, a and c in that order. b texts +…000 first (b: 1, overall: 1);
    # a and c then find it known.
    assert decide(f"{BLOCK}000", "e0") == ["queued"] * 3
    # b's own limit (1) refuses the next new number; a counts it (a: 1, overall: 2); c is
    # not guarded and counts nothing.
    [refused, *_] = decisions_of(service, [raw_event(f"{BLOCK}001", "e1")])
    assert refused["decision"] == "blocked_velocity"
    assert refused["detail"].startswith(
        f"velocity: 1 first-time recipients this hour in block {BLOCK}xxx (destination 'b'), "
        "the limit is 1; new numbers there wait until "
    )
    assert decide(f"{BLOCK}000", "e-known") == ["queued"] * 3  # known: never refused
    assert decide(f"{BLOCK}002", "e2") == ["blocked_velocity", "queued", "queued"]  # overall 3
    # A fourth new number reaches the service-wide limit (3) on a.
    fourth = decisions_of(service, [raw_event(f"{BLOCK}003", "e3")])
    assert [d["decision"] for d in fourth] == ["blocked_velocity", "blocked_velocity", "queued"]
    assert fourth[1]["detail"].startswith(
        f"velocity: 3 first-time recipients this hour in block {BLOCK}xxx (all destinations), "
        "the limit is 3"
    )
    # The tester's preview says the same, and claims nothing.
    with service.admin() as admin:
        event = posthog_webhook(phone=f"{BLOCK}004")
        trace = admin.post("/v1/destinations/a/test", json={"event": event}).json()
    assert (trace["decision"], trace["detail"]) == ("blocked_velocity", fourth[1]["detail"])
    assert len(drained(fake_twilio, 11, settle=0.5)) == 11  # the 11 queued above


@pytest.mark.usefixtures("mid_hour")
def test_concurrent_requests_never_pass_the_limit_together(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service('destinations: [{id: w, body: hi, from: "+15005550006"}]')

    def one(i: int) -> str:
        [answer] = decisions_of(service, [raw_event(f"{BLOCK}{i:03d}", f"c{i}")])
        return str(answer["decision"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        decisions = Counter(pool.map(one, range(200)))
    assert decisions == {"queued": 10, "blocked_velocity": 190}
    assert len(drained(fake_twilio, 10, settle=0.5)) == 10


def test_test_mode_is_not_counted(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(
        'destinations: [{id: t, mode: test, body: hi, from: "+15005550006"}]',
        velocity_per_block=1,
    )
    events = [raw_event(f"{BLOCK}{i:03d}", f"e{i}") for i in range(5)]
    assert {d["decision"] for d in decisions_of(service, events)} == {"queued"}


@pytest.mark.parametrize("code", [30450, 30453])
def test_a_pumping_answer_to_a_create_backs_off_the_number_and_its_block(
    start_service: Start, fake_twilio: FakeTwilio, code: int
) -> None:
    service = start_service('destinations: [{id: w, body: hi, from: "+15005550006"}]')
    known = decisions_of(service, [raw_event(f"{BLOCK}100", "known")])[0]
    service.wait_for_status(known["delivery_id"], "sent")
    fake_twilio.enqueue(FakeTwilio.fail_with(400, code, "Message delivery blocked"))
    flagged = decisions_of(service, [raw_event(f"{BLOCK}200", "flagged")])[0]
    record = service.wait_for_status(flagged["delivery_id"], "failed")
    assert record["error_code"] == code
    assert [h["status"] for h in record["history"]] == ["queued", "sending", "failed"]
    later = decisions_of(
        service,
        [
            raw_event(f"{BLOCK}200", "flagged-again"),  # the number itself
            raw_event(f"{BLOCK}201", "neighbour"),  # a new number of its block
            raw_event(f"{BLOCK}100", "known-again"),  # a number of the block texted before
            raw_event("+14155553000", "other-block"),
        ],
    )
    assert [d["decision"] for d in later] == [
        "blocked_velocity",
        "blocked_velocity",
        "queued",
        "queued",
    ]
    assert later[0]["detail"].startswith(
        f"Twilio answered {code} (SMS pumping protection): this number is backed off until "
    )
    assert later[1]["detail"].startswith(
        f"Twilio answered {code} (SMS pumping protection): first-time recipients in block "
        f"{BLOCK}xxx are backed off until "
    )
    assert len(drained(fake_twilio, 4, settle=0.3)) == 4  # known, flagged (refused), 2 more


def test_a_flagged_number_is_not_replayed(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service('destinations: [{id: w, body: hi, from: "+15005550006"}]')
    fake_twilio.enqueue(FakeTwilio.fail_with(400, 30453, "Message couldn't be delivered"))
    flagged = decisions_of(service, [raw_event(f"{BLOCK}200", "flagged")])[0]
    service.wait_for_status(flagged["delivery_id"], "failed")
    with service.admin() as admin:
        answer = admin.post("/v1/deliveries/replay", json={"dry_run": False}).json()
    [item] = answer["items"]
    assert (item["action"], item["reason"]) == ("skipped", "blocked_velocity")
    assert item["detail"].startswith("Twilio answered 30453 (SMS pumping protection)")
    assert len(drained(fake_twilio, 1, settle=0.3)) == 1


def test_a_pumping_status_callback_backs_off_the_number(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        'destinations: [{id: w, body: hi, from: "+15005550006"}]', public_base_url=PUBLIC
    )
    sent = decisions_of(service, [raw_event("+14155552671", "first")])[0]
    sid = service.wait_for_status(sent["delivery_id"], "sent")["twilio_sid"]
    form = status_form(sid, "failed", ErrorCode="30453")
    assert signed_post(service, "/v1/twilio/status", form).json()["outcome"] == "applied"
    again = decisions_of(service, [raw_event("+14155552671", "second")])[0]
    assert again["decision"] == "blocked_velocity"
    assert "Twilio answered 30453" in again["detail"]
