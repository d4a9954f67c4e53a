"""Quiet hours: the daily window in the recipient's time zone when no text should arrive.

Pure time arithmetic with `zoneinfo`: window edges are wall-clock times in a zone, turned
into instants day by day, so a window spanning midnight or a daylight-saving change is as
long as the wall clock says (21:00 to 08:00 across a spring-forward night is 10 hours).
Every comparison is made in UTC: Python compares two datetimes sharing one tzinfo by their
wall clocks, which is wrong for the repeated hour of a fall-back night.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
# IANA names are short ASCII paths ("America/Argentina/Buenos_Aires"); anything else from
# an event is not looked up at all.
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")

# A release time is searched window by window; zones that never open together give up.
_MAX_STEPS = 32


def _clock(value: object) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 21:00 as the sexagesimal number 1260.
        raise ValueError('write the time in quotes ("21:00"): unquoted, YAML reads it as a number')
    if isinstance(value, str) and (match := _CLOCK.match(value.strip())):
        hours, minutes, seconds = match.groups()
        return time(int(hours), int(minutes), int(seconds or 0))
    raise ValueError(f'expected a time of day "HH:MM" (24-hour), got {value!r}')


Clock = Annotated[time, BeforeValidator(_clock)]


class QuietHoursConfig(BaseModel):
    """`quiet_hours:` of a destination (or SMS_QUIET_HOURS): the window, its days, what to
    do with a message inside it, and where the recipient's zone comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Clock
    end: Clock  # equal to start: the whole day
    # The days a window *starts* on (Friday's 21:00-08:00 ends on Saturday morning).
    days: frozenset[Weekday] = Field(default=frozenset(WEEKDAYS), min_length=1)
    action: Literal["defer", "drop"] = "defer"
    # A template (or a fixed zone name): used when it renders a known IANA zone.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _fixed_zone_exists(cls, value: str | None) -> str | None:
        if value is not None and "{" not in value and zone_named(value) is None:
            raise ValueError(f"{value!r} is not an IANA time zone (such as Europe/Paris)")
        return value

    def describe(self) -> str:
        """``21:00-08:00`` as written (seconds only when given)."""
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(moment: time) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


@lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone `name` (``Europe/Paris``), or None when it is not one."""
    if len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    # fold=0: a wall time repeated by a fall-back is its first occurrence; one skipped by
    # a spring-forward maps to the instant the clock would have shown it (an hour later).
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def window_end(config: QuietHoursConfig, zone: ZoneInfo, moment: datetime) -> datetime | None:
    """When the quiet window holding `moment` ends (UTC), or None when `moment` is outside."""
    instant = moment.astimezone(UTC)
    local_day = instant.astimezone(zone).date()
    # Yesterday's window may still be running (21:00-08:00), so both days are checked.
    for day in (local_day - timedelta(days=1), local_day):
        if WEEKDAYS[day.weekday()] not in config.days:
            continue
        start = _instant(day, config.start, zone)
        end_day = day if config.end > config.start else day + timedelta(days=1)
        end = _instant(end_day, config.end, zone)
        if start <= instant < end:
            return end
    return None


class NeverOpen(Exception):
    """The zones' quiet windows never leave a moment open in all of them together."""


def release_time(
    config: QuietHoursConfig, zones: Sequence[ZoneInfo], moment: datetime
) -> datetime | None:
    """None when `moment` is outside quiet hours in every zone; else the first instant after
    it that is outside them in all zones (the recipient may be in any of them).

    Raises `NeverOpen` when no such instant is found (zones spread wider than the open
    part of the day).
    """
    at = moment.astimezone(UTC)
    for _ in range(_MAX_STEPS):
        ends = [end for zone in zones if (end := window_end(config, zone, at)) is not None]
        if not ends:
            return None if at == moment.astimezone(UTC) else at
        at = max(ends)
    raise NeverOpen


# --- quiet hours carried by a delivery, re-checked by the worker --------------------------
# A delivery keeps its destination's quiet hours and the recipient's zones as admission
# found them (a zone from the event's template cannot be found again later), in one short
# field: `<start>-<end>|<days>|<action>|<zones>`; days and zones empty mean every day and
# the number's own zones (libphonenumber's, found again from the number).


def quiet_spec(config: QuietHoursConfig, zones: Sequence[str] | None) -> str:
    """The quiet hours a delivery carries; `zones` None: the number's zones."""
    days = (
        ""
        if config.days == frozenset(WEEKDAYS)
        else ",".join(day for day in WEEKDAYS if day in config.days)
    )
    return f"{config.describe()}|{days}|{config.action}|{','.join(zones or ())}"


@lru_cache(maxsize=256)
def parse_quiet_spec(spec: str) -> tuple[QuietHoursConfig, tuple[str, ...]]:
    """`quiet_spec`'s config and zone names (empty: the number's)."""
    window, days, action, zones = spec.split("|")
    start, end = window.split("-")
    config = QuietHoursConfig.model_validate(
        {
            "start": start,
            "end": end,
            "action": action,
            **({"days": days.split(",")} if days else {}),
        }
    )
    return config, tuple(zone for zone in zones.split(",") if zone)
