"""Daily budgets (issue 14 §1): counted atomically at admission, exact under concurrency,
released when a send fails for good; over it, `over_budget` says what was spent and when
it resets, and the destination pauses until then (or until resumed) and pages once."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from app.pipeline.budget import BudgetConfig, budget_day
from app.store import StorageError, keys
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.pauses import PauseBook
from app.store.records import BudgetCharge
from tests.conftest import REDIS_URL, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.store.test_scripts import delivery

Start = Callable[..., RunningService]
ONCALL = "+14155550100"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

BUDGETED = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Welcome {{ person.properties.name }}!"
    from: "+15005550006"
    budget: {segments_per_day: 3}
    velocity: false  # many new numbers in one block: the pumping guard is not under test
  - id: oncall
    events: ["$sms_destination_paused"]
    to: "+14155550100"
    body: "{{ event.properties.detail }}"
    from: "+15005550006"
"""


def decide(service: RunningService, uuid: str, phone: str) -> dict[str, Any]:
    answer = service.post_events(posthog_webhook(uuid=uuid, phone=phone))
    assert answer.status_code == 202, answer.text
    [result] = [d for d in answer.json()["results"][0]["deliveries"]]
    return result  # type: ignore[no-any-return]


def next_utc_midnight() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def test_over_budget_pauses_until_the_day_ends_pages_once_and_resume_waives_it(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(BUDGETED)
    decisions = [decide(service, f"b-{i}", f"+1415555{i:04d}") for i in range(5)]
    assert [d["decision"] for d in decisions] == [
        "queued",
        "queued",
        "queued",
        "over_budget",
        "destination_paused",
    ]
    match = re.fullmatch(
        rf"destination welcome is over its daily budget \(3 of 3 segments spent, this "
        rf"message needs 1\); the budget resets at ({ISO}): paused until then or until "
        r"resumed \(POST /v1/destinations/welcome/resume or `smsdest destinations resume "
        r"welcome`\)",
        decisions[3]["detail"],
    )
    assert match, decisions[3]["detail"]
    assert datetime.fromisoformat(match[1].replace("Z", "+00:00")) == next_utc_midnight()
    assert "by its daily budget: over its daily budget" in decisions[4]["detail"]
    with service.admin() as client:
        [item] = [d for d in client.get("/v1/destinations").json()["items"] if d["id"] == "welcome"]
    assert item["pause"]["by"] == "budget"
    assert item["pause"]["until"] == match[1]
    assert item["budget"] == {"segments_per_day": 3, "per_day": None, "prices": None}

    for d in decisions[:3]:
        service.wait_for_status(d["delivery_id"], "sent")
    pages = _wait_for_pages(fake_twilio, 1)
    assert "over its daily budget" in pages[0]

    # Resumed: the operator means "keep sending today": the rest of the day is waived.
    with service.admin() as client:
        assert client.post("/v1/destinations/welcome/resume").json()["paused"] is False
    after = decide(service, "b-after", "+14155559999")
    assert after["decision"] == "queued"
    service.wait_for_status(after["delivery_id"], "sent")
    assert len(_wait_for_pages(fake_twilio, 1)) == 1


def _pages(fake_twilio: FakeTwilio) -> list[str]:
    return [r.form["Body"] for r in fake_twilio.message_requests if r.form["To"] == ONCALL]


def _wait_for_pages(fake_twilio: FakeTwilio, n: int) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(_pages(fake_twilio)) >= n:
            time.sleep(0.3)  # and no more come
            return _pages(fake_twilio)
        time.sleep(0.05)
    raise AssertionError("no page")


def test_a_money_budget_prices_each_segment_by_country(start_service: Start) -> None:
    yaml_text = BUDGETED.replace(
        "budget: {segments_per_day: 3}",
        'budget: {per_day: 0.03, prices: {US: 0.01, GB: 0.04, "*": 0.05}}',
    )
    service = start_service(yaml_text, run_worker=False, allowed_countries="*")
    assert decide(service, "m-1", "+14155550001")["decision"] == "queued"  # 0.01
    over = decide(service, "m-2", "+447400123456")  # 0.04 would make 0.05
    assert over["decision"] == "over_budget"
    assert "(0.01 of 0.03 spent, this message costs 0.04);" in over["detail"]


def test_a_send_that_fails_for_good_gives_its_budget_back(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    yaml_text = BUDGETED.replace("segments_per_day: 3", "segments_per_day: 1")
    fake_twilio.enqueue(fake_twilio.fail_with(400, 21602, "Message body is required"))
    service = start_service(yaml_text)
    first = decide(service, "f-1", "+14155550001")
    failed = service.wait_for_status(first["delivery_id"], "failed")
    assert failed["error_code"] == 21602
    [key] = redis_client.keys(keys.PREFIX + "budget:welcome:*")
    assert redis_client.hget(key, "segments") == "0"
    second = decide(service, "f-2", "+14155550002")
    assert second["decision"] == "queued"
    service.wait_for_status(second["delivery_id"], "sent")
    assert redis_client.hget(key, "segments") == "1"


@pytest.fixture
async def log(redis_client: redis.Redis) -> AsyncIterator[DeliveryLog]:
    client = connect(REDIS_URL)
    yield DeliveryLog(client, dedupe_ttl_s=60, retention_s=3600)
    await client.aclose()


def charged(limit: int, segments: int = 1, key: str = "") -> BudgetCharge:
    ends = int((datetime.now(UTC) + timedelta(hours=1)).timestamp() * 1000)
    return BudgetCharge(key or keys.budget("welcome", "20261201"), segments, limit, 0, None, ends)


async def test_many_concurrent_admissions_never_exceed_the_budget(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    # 400 events for 400 recipients at once, in 400 separate calls (each its own request,
    # as concurrent ingests are), 2 segments each, 101 segments a day: 50 fit.
    news = [
        delivery(f"c-{i}", recipient=f"+1415555{i:04d}", segments=2, budget=charged(101, 2))
        for i in range(400)
    ]
    results = await asyncio.gather(*(log.admit([new]) for new in news))
    decisions = [admission.decision for [admission] in results]
    assert decisions.count("queued") == 50
    assert decisions.count("over_budget") == 1
    assert decisions.count("destination_paused") == 349
    assert redis_client.hget(keys.budget("welcome", "20261201"), "segments") == "100"
    assert redis_client.xlen(keys.SEND_STREAM) == 50


def test_concurrent_ingest_through_two_services_never_exceeds_the_budget(
    start_service: Start, redis_client: redis.Redis
) -> None:
    yaml_text = BUDGETED.replace("segments_per_day: 3", "segments_per_day: 25")
    services = [start_service(yaml_text, run_worker=False) for _ in range(2)]
    decisions: list[str] = []
    lock = threading.Lock()

    def post(worker: int) -> None:
        service = services[worker % 2]
        with service.client() as client:
            for i in range(20):
                n = worker * 100 + i
                body = posthog_webhook(uuid=f"t-{n}", phone=f"+1415556{n:04d}")
                answer = client.post("/v1/events", json=body)
                with lock:
                    decisions.extend(
                        d["decision"] for d in answer.json()["results"][0]["deliveries"]
                    )

    threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(decisions) == 160
    assert decisions.count("queued") == 25
    assert decisions.count("over_budget") == 1
    assert decisions.count("destination_paused") == 134


async def test_admission_failing_after_the_budget_counted_gives_it_back(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    redis_client.set(keys.STATUS_INDEX_PREFIX + "queued", "not a sorted set")
    with pytest.raises(StorageError, match="undone"):
        await log.admit([delivery(budget=charged(5))])
    assert redis_client.hget(keys.budget("welcome", "20261201"), "segments") == "0"
    redis_client.delete(keys.STATUS_INDEX_PREFIX + "queued")
    [admission] = await log.admit([delivery(budget=charged(5))])
    assert admission.decision == "queued"
    assert redis_client.hget(keys.budget("welcome", "20261201"), "segments") == "1"


async def test_release_gives_back_once(log: DeliveryLog, redis_client: redis.Redis) -> None:
    book = PauseBook(connect(REDIS_URL))
    [admission] = await log.admit([delivery(budget=charged(5, segments=3))])
    key = keys.budget("welcome", "20261201")
    assert redis_client.hget(key, "segments") == "3"
    assert await book.release_budget(admission.delivery_id)
    assert not await book.release_budget(admission.delivery_id)
    assert redis_client.hget(key, "segments") == "0"


async def test_the_preview_reads_the_budget_and_writes_nothing(
    log: DeliveryLog, redis_client: redis.Redis
) -> None:
    [admission] = await log.admit([delivery("p-1", budget=charged(1))])
    assert admission.decision == "queued"
    before = {k: redis_client.type(k) for k in redis_client.keys("*")}
    preview = await log.preview(delivery("p-2", recipient="+14155550002", budget=charged(1)))
    assert preview.gate is not None and preview.gate[0] == "over_budget"
    assert {k: redis_client.type(k) for k in redis_client.keys("*")} == before
    assert not redis_client.hexists(keys.PAUSES, "welcome")


def test_a_budget_day_ends_at_the_zones_midnight_across_daylight_saving() -> None:
    zone = ZoneInfo("America/New_York")
    # 2026-11-01: clocks fall back at 02:00, the day is 25 hours long.
    day, ends = budget_day(datetime(2026, 11, 1, 12, tzinfo=UTC), zone)
    assert day == "20261101"
    assert datetime.fromtimestamp(ends / 1000, UTC) == datetime(2026, 11, 2, 5, tzinfo=UTC)
    day, ends = budget_day(datetime(2026, 11, 2, 4, 59, tzinfo=UTC), zone)
    assert day == "20261101"
    assert budget_day(datetime(2026, 12, 1, 23, 59, tzinfo=UTC), ZoneInfo("UTC"))[0] == "20261201"


def test_budget_config_shapes() -> None:
    budget = BudgetConfig.model_validate({"per_day": 5.0, "prices": {"US": 0.0083, "GB": 0.04}})
    assert budget.per_day == Decimal("5.0")
    assert budget.cost_micros("+14155552671", 2) == 16_600
    # A country the table lacks, without "*", costs the table's highest price.
    assert budget.cost_micros("+33612345678", 1) == 40_000
    for bad, words in (
        ({}, "set 'segments_per_day'"),
        ({"per_day": 5}, "'per_day' is money"),
        ({"segments_per_day": 0}, "greater than or equal to 1"),
        ({"segments_per_day": 5, "prices": {"usa": 0.1}}, "not an ISO country code"),
    ):
        with pytest.raises(ValueError, match=words):
            BudgetConfig.model_validate(bad)


def test_a_skipped_delivery_counts_nothing(start_service: Start, redis_client: redis.Redis) -> None:
    service = start_service(BUDGETED, run_worker=False)
    answer = service.post_events(posthog_webhook(uuid="s-1", phone="not a number"))
    [d] = answer.json()["results"][0]["deliveries"]
    assert d["decision"] == "invalid_recipient"
    assert redis_client.keys(keys.PREFIX + "budget:*") == []
