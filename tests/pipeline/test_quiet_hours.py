"""Quiet-hours arithmetic: across midnight, across daylight-saving changes, by weekday,
and over several candidate zones. Every clock here is a fixed `datetime` the test picks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from app.pipeline.quiet_hours import (
    NeverOpen,
    QuietHoursConfig,
    release_time,
    window_end,
    zone_named,
)

NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHoursConfig(start="21:00", end="08:00")  # type: ignore[arg-type]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "release"),
    [
        ("2026-06-10T00:30", None),  # 20:30 EDT: before the window
        ("2026-06-10T01:00", "2026-06-10T12:00"),  # 21:00 EDT: the window starts
        ("2026-06-10T04:00", "2026-06-10T12:00"),  # midnight EDT: across it
        ("2026-06-10T11:59", "2026-06-10T12:00"),  # 07:59 EDT
        ("2026-06-10T12:00", None),  # 08:00 EDT: open again
        ("2026-06-10T18:00", None),
    ],
)
def test_across_midnight(moment: str, release: str | None) -> None:
    found = release_time(NIGHT, [NEW_YORK], utc(moment))
    assert found == (utc(release) if release else None)


def test_spring_forward_night_is_an_hour_shorter() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: 08:00 that morning is 12:00Z, not 13:00Z.
    at = utc("2026-03-08T06:30")  # 01:30 EST
    assert release_time(NIGHT, [NEW_YORK], at) == utc("2026-03-08T12:00")
    assert window_end(NIGHT, NEW_YORK, utc("2026-03-08T02:00")) == utc("2026-03-08T12:00")
    assert window_end(NIGHT, NEW_YORK, utc("2026-03-08T01:59")) is None  # 20:59 EST


def test_fall_back_night_is_an_hour_longer() -> None:
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: 08:00 EST is 13:00Z. The repeated
    # 01:30 is inside the window both times.
    first, second = utc("2026-11-01T05:30"), utc("2026-11-01T06:30")
    for at in (first, second):
        assert at.astimezone(NEW_YORK).hour == 1
        assert release_time(NIGHT, [NEW_YORK], at) == utc("2026-11-01T13:00")
    assert release_time(NIGHT, [NEW_YORK], utc("2026-11-01T12:30")) == utc("2026-11-01T13:00")
    assert release_time(NIGHT, [NEW_YORK], utc("2026-11-01T13:00")) is None


def test_days_are_the_days_a_window_starts_on() -> None:
    friday = QuietHoursConfig(start="21:00", end="08:00", days=["fri"])  # type: ignore[arg-type]
    paris = ZoneInfo("Europe/Paris")
    saturday_3am = datetime(2026, 6, 13, 3, tzinfo=paris)  # in Friday's window
    sunday_3am = datetime(2026, 6, 14, 3, tzinfo=paris)
    assert release_time(friday, [paris], saturday_3am) == datetime(2026, 6, 13, 8, tzinfo=paris)
    assert release_time(friday, [paris], sunday_3am) is None


def test_whole_days_chain_into_one_release() -> None:
    weekend = QuietHoursConfig(start="00:00", end="00:00", days=["sat", "sun"])  # type: ignore[arg-type]
    utc_zone = ZoneInfo("UTC")
    saturday_noon = utc("2026-06-13T12:00")
    assert release_time(weekend, [utc_zone], saturday_noon) == utc("2026-06-15T00:00")


def test_several_zones_wait_until_the_window_is_open_in_all() -> None:
    # 07:30 in New York is 04:30 in Los Angeles: held until 08:00 in Los Angeles.
    zones = [NEW_YORK, ZoneInfo("America/Los_Angeles")]
    assert release_time(NIGHT, zones, utc("2026-06-10T11:30")) == utc("2026-06-10T15:00")
    # 09:00 in New York, 06:00 in Los Angeles: still quiet in one of them.
    assert release_time(NIGHT, zones, utc("2026-06-10T13:00")) == utc("2026-06-10T15:00")


def test_zones_that_never_open_together_say_so() -> None:
    long_night = QuietHoursConfig(start="12:00", end="11:00")  # type: ignore[arg-type]
    zones = [ZoneInfo("Pacific/Honolulu"), ZoneInfo("Asia/Tokyo")]
    with pytest.raises(NeverOpen):
        release_time(long_night, zones, utc("2026-06-10T00:00"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("start", 1260, "in quotes"),  # YAML's reading of an unquoted 21:00
        ("start", "25:00", "HH:MM"),
        ("timezone", "Mars/Olympus", "not an IANA time zone"),
        ("days", ["mon", "someday"], "mon"),
        ("action", "hold", "defer"),
    ],
)
def test_bad_config_is_refused(field: str, value: object, message: str) -> None:
    spec: dict[str, object] = {"start": "21:00", "end": "08:00", field: value}
    with pytest.raises(ValidationError, match=message):
        QuietHoursConfig.model_validate(spec)


def test_zone_names_from_events_are_checked_before_lookup() -> None:
    assert zone_named("Europe/Paris") == ZoneInfo("Europe/Paris")
    for hostile in ("../../etc/passwd", "/etc/localtime", "x" * 500, "", "Not/A_Zone"):
        assert zone_named(hostile) is None
