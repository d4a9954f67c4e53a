"""Sender pacing: the shared schedule (pace.lua) tested directly, then measured at the fake
Twilio with two services' workers sharing one 1-segment-per-second sender; AIMD on
Twilio's slow-down codes; parking a wait longer than a worker may hold a message."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from app.destinations import ConfigError, load_destinations
from app.metrics import Metrics
from app.pipeline.render import TemplateRenderer
from app.senders import DEFAULT_RATES, sender_type, undeclared_rate
from app.services.pacing import SenderPacer
from app.store import keys
from app.store.pacing import Reservation, SenderPacing
from tests.conftest import REDIS_URL, REPO, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio, RecordedRequest

Start = Callable[..., RunningService]
SENDER = "+15005550006"


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def pacing(redis_client: redis.Redis) -> Iterator[Callable[[], SenderPacing]]:
    """A SenderPacing over its own asyncio client, made inside each asyncio.run."""
    clients: list[AsyncRedis] = []

    def make() -> SenderPacing:
        client = AsyncRedis.from_url(REDIS_URL, decode_responses=True)
        clients.append(client)
        return SenderPacing(client)

    yield make


# --- pace.lua, directly ------------------------------------------------------------------


def test_reservations_follow_one_another_by_segments(pacing: Callable[[], SenderPacing]) -> None:
    async def go() -> list[int]:
        store = pacing()
        now = 1_000_000
        slots = []
        for segments in (1, 3, 1):
            reservation = await store.reserve(SENDER, 1.0, segments, now)
            slots.append(reservation.slot_ms)
        return slots

    # 1 segment/s: the second waits 1 s, the third waits the second's 3 segments.
    assert _run(go()) == [1_000_000, 1_001_000, 1_004_000]


def test_a_reservation_past_its_deadline_reserves_nothing(
    pacing: Callable[[], SenderPacing],
) -> None:
    async def go() -> tuple[bool, int, int]:
        store = pacing()
        await store.reserve(SENDER, 1.0, 5, 0)  # the sender is busy until 5 s
        refused = await store.reserve(SENDER, 1.0, 1, 0, deadline_ms=4_000)
        after = await store.reserve(SENDER, 1.0, 1, 0)
        return refused.refused, refused.slot_ms, after.slot_ms

    assert _run(go()) == (True, 5_000, 5_000)


def test_declared_rates_win_over_the_default(
    pacing: Callable[[], SenderPacing], redis_client: redis.Redis
) -> None:
    async def go() -> list[int]:
        store = pacing()
        await store.publish({SENDER: 4.0})
        first = await store.reserve(SENDER, 1.0, 1, 0)
        second = await store.reserve(SENDER, 1.0, 1, 0)
        await store.publish({})  # removed from the file: the default again
        third = await store.reserve(SENDER, 1.0, 1, 0)
        return [first.slot_ms, second.slot_ms, third.slot_ms]

    assert _run(go()) == [0, 250, 500]
    assert redis_client.exists(keys.SENDER_RATES) == 0


def test_aimd_halves_once_per_cooldown_down_to_a_floor_and_successes_add_back(
    pacing: Callable[[], SenderPacing],
) -> None:
    async def go() -> list[tuple[float, bool]]:
        store = pacing()
        cut = {"multiplier": 0.5, "floor": 0.125, "cooldown_ms": 2000}
        steps = [await store.slow(SENDER, 10.0, 0, **cut)]
        steps.append(await store.slow(SENDER, 10.0, 1_000, **cut))  # within the cooldown
        for at in (2_000, 4_000, 6_000, 8_000):
            steps.append(await store.slow(SENDER, 10.0, at, **cut))
        back = await store.reserve(SENDER, 10.0, 1, 9_000, successes=4, step=0.05)
        steps.append((back.rate, False))
        return steps

    assert _run(go()) == [
        (5.0, True),
        (5.0, False),
        (2.5, True),
        (1.25, True),
        (1.25, True),  # the floor: an eighth of 10
        (1.25, True),
        (3.25, False),  # + 4 × 5% of 10
    ]


def test_a_fast_sender_is_reserved_a_lease_at_its_rate_now(
    pacing: Callable[[], SenderPacing],
) -> None:
    async def go() -> list[tuple[int, int]]:
        store = pacing()
        await store.publish({SENDER: 100.0, "+15005550007": 1.0})
        fast = await store.reserve(SENDER, 1.0, 1, 0, lease_ms=100)
        after = await store.reserve(SENDER, 1.0, 1, 0, lease_ms=100)
        slow = await store.reserve("+15005550007", 1.0, 1, 0, lease_ms=100)
        return [(r.slot_ms, r.segments) for r in (fast, after, slow)]

    # 100 segments/s: a tenth of a second is 10 segments, 100 ms of the schedule; a
    # 1-segment/s sender reserves only what the message needs.
    assert _run(go()) == [(0, 10), (100, 10), (0, 1)]


def test_the_pacer_hands_out_a_lease_without_asking_redis_again(
    pacing: Callable[[], SenderPacing],
) -> None:
    async def go() -> tuple[list[int], int]:
        store = pacing()
        await store.publish({SENDER: 1000.0})
        calls = 0
        reserve = store.reserve

        async def counted(*args: Any, **kwargs: Any) -> Reservation:
            nonlocal calls
            calls += 1
            return await reserve(*args, **kwargs)

        store.reserve = counted  # type: ignore[method-assign]
        pacer = SenderPacer(store, Metrics())
        slots = [(await pacer.reserve(SENDER, 2, None)).slot_ms for _ in range(50)]
        return [b - a for a, b in itertools.pairwise(slots)], calls

    steps, calls = _run(go())
    # 2 segments at 1,000/s: 2 ms apart; a lease of 100 segments serves 50 messages.
    assert all(step in (1, 2, 3) for step in steps) and sum(steps) in range(97, 100)
    assert calls == 1


def test_undeclared_senders_are_paced_by_their_shape() -> None:
    assert sender_type("+14155552671") == "long_code"
    assert sender_type("+18005550100") == "toll_free"
    assert sender_type("12345") == "short_code"
    assert sender_type("MG" + "0" * 32) == "messaging_service"
    assert undeclared_rate("+18005550100") == DEFAULT_RATES["toll_free"] == 3.0
    assert undeclared_rate("+18005550100", 7.0) == 7.0


# --- measured at the fake Twilio ---------------------------------------------------------

PHONES = [f"+1415555{2600 + i}" for i in range(20)]


def paced_destinations(rate: float, body: str = "Hello {{ person.properties.name }}") -> str:
    return f"""
senders:
  "{SENDER}": {{rate: {rate}}}
destinations:
  - id: paced
    events: [signed up]
    body: "{body}"
    from: "{SENDER}"
"""


def post(service: RunningService, n: int, first: int = 0) -> list[str]:
    ids = []
    for i in range(first, first + n):
        answer = service.post_events(posthog_webhook(uuid=f"pace-{i}", phone=PHONES[i])).json()
        delivery = answer["results"][0]["deliveries"][0]
        assert delivery["decision"] == "queued", delivery
        ids.append(delivery["delivery_id"])
    return ids


def warm_up(*services: RunningService) -> None:
    """A process's first Twilio call loads the HTTP stack and connects (most of a second
    here): have each make one before the measured sends."""
    for service in services:
        with service.admin() as admin:
            assert admin.get("/v1/messages").status_code == 200


def gaps(requests: list[RecordedRequest]) -> list[float]:
    times = sorted(r.received_at for r in requests)
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def test_two_workers_share_a_one_segment_per_second_sender(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # Two services, each with its worker, read one stream; two sends in flight each, so
    # both take messages and wait for the sender's turn side by side.
    yaml_text = paced_destinations(1)
    first = start_service(yaml_text, worker_concurrency=2)
    second = start_service(yaml_text, worker_concurrency=2)
    warm_up(first, second)
    n = 9
    post(first, n)
    requests = fake_twilio.wait_for_requests(n, timeout=n + 10)
    times = sorted(r.received_at for r in requests)
    pace = (n - 1) / (times[-1] - times[0])
    assert 0.9 <= pace <= 1.1, (pace, gaps(requests))
    assert min(gaps(requests)) >= 0.85, gaps(requests)  # paced, not in bursts
    time.sleep(1.2)
    assert len(fake_twilio.message_requests) == n  # none sent twice


def test_a_multi_segment_body_counts_its_segments(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    long_body = "x" * 200  # GSM-7, 2 segments (153 characters each)
    service = start_service(paced_destinations(2, long_body))
    warm_up(service)
    ids = post(service, 4)
    assert service.wait_for_status(ids[0], "sent")["segments"] == 2
    requests = fake_twilio.wait_for_requests(4, timeout=15)
    # 2 segments/s, 2 segments each: one message per second.
    for gap in gaps(requests):
        assert 0.9 <= gap <= 1.1, gaps(requests)


def test_a_30001_answer_halves_the_pace(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    service = start_service(paced_destinations(1), worker_concurrency=4)
    warm_up(service)
    fake_twilio.enqueue(fake_twilio.fail_with(429, 30001, "Queue overflow"))
    [first] = post(service, 1)
    retrying = service.wait_for_status(first, "retrying", "sent")
    later = post(service, 2, first=1)
    requests = fake_twilio.wait_for_requests(4, timeout=15)
    record = service.wait_for_status(first, "sent")
    details = [h.get("detail", "") for h in record["history"]]
    assert any("slowed to 0.5 segments/s" in d and "30001" in d for d in details), details
    assert retrying["status"] in ("retrying", "sent")
    # The refused attempt, then its retry a second later (reserved at 1/s), then the
    # others two seconds apart: half the pace.
    after_cut = gaps(requests)[1:]
    assert len(after_cut) == 2
    for gap in after_cut:
        assert 1.8 <= gap <= 2.2, gaps(requests)
    for delivery_id in later:
        service.wait_for_status(delivery_id, "sent")
    state = redis_client.hgetall(keys.sender_pace(SENDER))
    assert 0.5 <= float(state["factor"]) < 1  # cut, and won back a little per success
    metrics = service.client(None).get("/metrics").text
    assert f'smsdest_sender_rate{{sender="{SENDER}"}}' in metrics


def test_a_wait_longer_than_a_worker_may_hold_parks_the_message(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # SMS_RECLAIM_IDLE 8 s with a 1 s Twilio deadline leaves no time to wait holding the
    # entry: every wait goes to the delayed set, its turn kept, reserved once.
    service = start_service(paced_destinations(1), twilio_timeout=1, reclaim_idle=8)
    assert service.settings.pacing_hold_s == 0
    warm_up(service)
    ids = post(service, 3)
    requests = fake_twilio.wait_for_requests(3, timeout=15)
    times = sorted(r.received_at for r in requests)
    assert 1.9 <= times[-1] - times[0] <= 2.5, gaps(requests)
    last = service.wait_for_status(ids[-1], "sent")
    assert last["attempts"] == 1
    parked = [
        h for h in last["history"] if h["status"] == "queued" and "paced" in h.get("detail", "")
    ]
    assert parked and "its turn at" in parked[0]["detail"], last["history"]
    time.sleep(1)
    assert len(fake_twilio.message_requests) == 3


# --- `senders:` in the destinations file --------------------------------------------------

SENDERS_FILE = """\
senders:
  "+15005550006": {rate: 10}
  "+18005550100": {type: toll_free}
  MG00000000000000000000000000000000: {type: short_code}
  "+15005550007": 2.5
destinations:
  - id: welcome
    body: hello
    from: "+15005550006"
"""


def test_senders_are_read_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text(SENDERS_FILE)
    loaded = load_destinations(path, TemplateRenderer(REPO / "templates"))
    assert loaded.sender_rates == {
        "+15005550006": 10.0,
        "+18005550100": 3.0,
        "MG00000000000000000000000000000000": 100.0,
        "+15005550007": 2.5,
    }


def test_bad_senders_are_reported_with_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text(
        """\
senders:
  "+1 500 555 0006": {rate: 1}
  "+15005550006": {rate: 0}
  "+15005550007": {rat: 3}
  "+15005550008": {}
  nobody: {rate: 1}
destinations:
  - id: welcome
    body: hello
    from: "+15005550006"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_destinations(path, TemplateRenderer(REPO / "templates"))
    problems = [p.describe(path).removeprefix(str(path)) for p in caught.value.problems]
    assert problems == [
        ":2: senders.+1 500 555 0006: '+1 500 555 0006': write it as destinations' 'from' "
        "are stored, +15005550006",
        ":3: senders.+15005550006.rate: Input should be greater than 0",
        ":4: senders.+15005550007.rat: unknown field (did you mean 'rate'?)",
        ":5: senders.+15005550008: give 'rate' (segments per second) or 'type'",
        ":6: senders.nobody: 'nobody' is not a sender: write the 'from' number in E.164 "
        "(+14155552671), a short code's digits or a Messaging Service SID (MG + 32 hex)",
    ], problems


def test_a_reload_publishes_the_senders_for_every_worker(
    start_service: Start, redis_client: redis.Redis
) -> None:
    service = start_service(paced_destinations(1))
    assert redis_client.hgetall(keys.SENDER_RATES) == {SENDER: "1.0"}
    service.settings.destinations_file.write_text(paced_destinations(7))
    with service.admin() as admin:
        assert admin.post("/v1/destinations/reload").status_code == 200
    assert redis_client.hgetall(keys.SENDER_RATES) == {SENDER: "7.0"}
