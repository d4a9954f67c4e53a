"""Quiet hours checked again before every attempt: a delivery that a backoff (or pacing,
or a backlog) pushed into its recipient's quiet hours is deferred to the window's opening,
never texted inside it. The check itself with a clock the test controls; then end to end
with a window that opens between the first attempt and its retry."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from app.pipeline.plan import recheck_quiet_hours
from app.pipeline.quiet_hours import QuietHoursConfig, parse_quiet_spec, quiet_spec
from app.store import keys
from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio, ScriptedResponse

Start = Callable[..., RunningService]
NIGHT = QuietHoursConfig.model_validate({"start": "21:00", "end": "08:00"})
LOS_ANGELES = "+14155552671"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_the_spec_a_delivery_carries_reads_back() -> None:
    weekdays = QuietHoursConfig.model_validate(
        {"start": "21:30", "end": "07:00:30", "days": ["fri", "mon"], "action": "drop"}
    )
    spec = quiet_spec(weekdays, ["Europe/Paris"])
    assert spec == "21:30-07:00:30|mon,fri|drop|Europe/Paris"
    assert parse_quiet_spec(spec) == (weekdays, ("Europe/Paris",))
    assert quiet_spec(NIGHT, None) == "21:00-08:00||defer|"
    assert parse_quiet_spec(quiet_spec(NIGHT, None)) == (NIGHT, ())


def test_inside_the_window_defers_to_its_opening() -> None:
    spec = quiet_spec(NIGHT, ["America/New_York"])
    found = recheck_quiet_hours(spec, LOS_ANGELES, at("2026-06-10T22:30:00-04:00"), None)
    assert found is not None and not found.drop
    assert found.release == at("2026-06-11T08:00:00-04:00")
    assert found.detail == (
        "quiet hours 21:00-08:00 in America/New_York (as admitted): held until 2026-06-11T12:00:00Z"
    )
    assert recheck_quiet_hours(spec, LOS_ANGELES, at("2026-06-10T20:59:59-04:00"), None) is None


def test_the_numbers_zone_is_found_again_from_the_number() -> None:
    spec = quiet_spec(NIGHT, None)  # admission took the zone from the number
    # 21:30 in New York is 18:30 in Los Angeles, the number's zone: outside.
    assert recheck_quiet_hours(spec, LOS_ANGELES, at("2026-06-10T21:30:00-04:00"), None) is None
    found = recheck_quiet_hours(spec, LOS_ANGELES, at("2026-06-10T23:00:00-07:00"), None)
    assert found is not None and "America/Los_Angeles (the number)" in found.detail


def test_across_a_fall_back_night() -> None:
    # Clocks go back at 02:00 on 2026-11-01 in New York: the night is 12 hours long.
    spec = quiet_spec(NIGHT, ["America/New_York"])
    found = recheck_quiet_hours(spec, LOS_ANGELES, at("2026-11-01T01:30:00-04:00"), None)
    assert found is not None and found.release == at("2026-11-01T08:00:00-05:00")


def test_dropped_when_its_destination_drops_or_the_opening_is_past_its_validity() -> None:
    drop = QuietHoursConfig.model_validate({"start": "21:00", "end": "08:00", "action": "drop"})
    moment = at("2026-06-10T23:00:00-04:00")
    found = recheck_quiet_hours(quiet_spec(drop, ["America/New_York"]), LOS_ANGELES, moment, None)
    assert found is not None and found.drop and "dropped" in found.detail
    expires = moment + timedelta(minutes=10)
    found = recheck_quiet_hours(
        quiet_spec(NIGHT, ["America/New_York"]), LOS_ANGELES, moment, expires
    )
    assert found is not None and found.drop and "past its validity" in found.detail


def test_a_retry_pushed_into_quiet_hours_is_deferred_to_their_opening(
    start_service: Start, fake_twilio: FakeTwilio, redis_client: redis.Redis
) -> None:
    # A window opening 6 s from now: the event is admitted outside it, its first attempt
    # is refused with Retry-After 8 s, and the retry falls inside it.
    now = datetime.now(UTC)
    opens, closes = now + timedelta(seconds=6), now + timedelta(hours=2)
    service = start_service(
        f"""
destinations:
  - id: night
    events: [signed up]
    body: "Hi"
    from: "+15005550006"
    quiet_hours: {{start: "{opens:%H:%M:%S}", end: "{closes:%H:%M:%S}", timezone: UTC}}
""",
        retry_max_delay=30,
    )
    fake_twilio.enqueue(
        ScriptedResponse(
            429,
            {"code": 20429, "message": "Too Many Requests", "status": 429},
            headers={"Retry-After": "8"},
        )
    )
    answer = service.post_events(posthog_webhook()).json()
    [decision] = answer["results"][0]["deliveries"]
    assert decision["decision"] == "queued", decision  # outside the window when admitted
    assert datetime.now(UTC) < opens
    delivery_id = decision["delivery_id"]
    record = service.wait_for_status(delivery_id, "scheduled", timeout=20)
    assert datetime.now(UTC) >= opens
    held = record["history"][-1]
    release = closes.replace(microsecond=0)
    assert held["detail"] == (
        f"quiet hours {opens:%H:%M:%S}-{closes:%H:%M:%S} in UTC (as admitted): held until "
        f"{release.isoformat().replace('+00:00', 'Z')}"
    ), record["history"]
    assert record["attempts"] == 1  # the held attempt was never made
    due = redis_client.zscore(keys.DELAYED_SENDS, delivery_id)
    assert due == release.timestamp() * 1000
    time.sleep(0.5)
    assert len(fake_twilio.message_requests) == 1  # only the refused first attempt
