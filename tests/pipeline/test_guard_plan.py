"""The pipeline's guards, decided per event with a clock the test sets: countries, quiet
hours (zone from the template, the number, or the default), and message lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.destinations import Defaults, Destination, load_destinations
from app.pipeline.events import parse_event
from app.pipeline.plan import Evaluation, evaluate
from app.pipeline.quiet_hours import QuietHoursConfig
from app.pipeline.render import TemplateRenderer
from tests.conftest import REPO, posthog_webhook, write_destinations

HORIZON = timedelta(days=30)
US_MOBILE, GB_LANDLINE, FR_MOBILE = "+14155552671", "+442079460000", "+33612345678"
# 23:00 in Los Angeles (PDT), 07:00 in London (BST), 08:00 in Paris (CEST).
LATE_IN_LA = datetime(2026, 6, 11, 6, 0, tzinfo=UTC)
NIGHT = {"start": "21:00", "end": "08:00"}


def load(tmp_path: Path, yaml_text: str, defaults: Defaults | None = None) -> list[Destination]:
    path = write_destinations(tmp_path, yaml_text)
    destinations = load_destinations(path, TemplateRenderer(REPO / "templates"), defaults)
    return [d for config in destinations.configs() if (d := destinations.get(config.id))]


def run(
    destination: Destination,
    phone: str = US_MOBILE,
    now: datetime = LATE_IN_LA,
    person: dict[str, Any] | None = None,
) -> Evaluation:
    event = parse_event(posthog_webhook(phone=phone, person_properties=person))
    return evaluate(destination, event, event.template_context(), "US", now, HORIZON)


def test_countries_default_to_the_default_region(tmp_path: Path) -> None:
    [welcome] = load(tmp_path, 'destinations: [{id: w, body: hi, from: "+15005550006"}]')
    assert run(welcome).skip_reason is None
    blocked = run(welcome, GB_LANDLINE)
    assert blocked.skip_reason == "blocked_country"
    assert blocked.detail == (
        "+4420•••0000 is a number in GB; this destination texts US only (SMS_ALLOWED_COUNTRIES)"
    )


def test_destination_countries_replace_the_setting(tmp_path: Path) -> None:
    text = """
destinations:
  - {id: europe, body: hi, from: "+15005550006", countries: [gb, FR]}
  - {id: anywhere, body: hi, from: "+15005550006", countries: ["*"]}
"""
    europe, anywhere = load(tmp_path, text)
    assert run(europe, GB_LANDLINE).skip_reason is None
    assert run(europe, FR_MOBILE).skip_reason is None
    us = run(europe)
    assert us.skip_reason == "blocked_country"
    assert us.detail is not None and us.detail.endswith("texts FR, GB only (its countries)")
    non_geographic = run(anywhere, "+80012345678")
    assert non_geographic.skip_reason is None
    closed = load(tmp_path, 'destinations: [{id: w, body: hi, from: "+15005550006"}]')[0]
    assert "no country (a non-geographic number)" in str(run(closed, "+80012345678").detail)


def test_quiet_hours_defer_in_the_numbers_zone(tmp_path: Path) -> None:
    text = 'destinations: [{id: w, body: hi, from: "+15005550006", countries: ["*"],'
    [night] = load(tmp_path, text + ' quiet_hours: {start: "21:00", end: "08:00"}}]')
    deferred = run(night)  # 23:00 in Los Angeles
    assert deferred.deferred and deferred.schedule == "local"
    assert deferred.send_at == datetime(2026, 6, 11, 15, 0, tzinfo=UTC)  # 08:00 PDT
    assert deferred.detail == (
        "quiet hours 21:00-08:00 in America/Los_Angeles (the number): "
        "held until 2026-06-11T15:00:00Z"
    )
    assert run(night, FR_MOBILE).skip_reason is None  # 08:00 in Paris: open
    assert not run(night, FR_MOBILE).deferred


def test_the_zone_template_wins_when_it_names_a_zone(tmp_path: Path) -> None:
    text = """
destinations:
  - id: w
    body: hi
    from: "+15005550006"
    quiet_hours:
      start: "21:00"
      end: "08:00"
      action: drop
      timezone: "{{ person.properties['$geoip_time_zone'] }}"
"""
    [night] = load(tmp_path, text)
    tokyo = run(night, person={"$geoip_time_zone": "Asia/Tokyo"})  # 15:00 in Tokyo
    assert tokyo.skip_reason is None
    la = run(night, person={"$geoip_time_zone": "America/Los_Angeles"})
    assert la.skip_reason == "quiet_hours"
    assert la.detail == (
        "quiet hours 21:00-08:00 in America/Los_Angeles (quiet_hours.timezone): dropped; "
        "the window opens at 2026-06-11T15:00:00Z"
    )
    # Not a zone, or no such property: the number's zone decides (Los Angeles again).
    for person in ({"$geoip_time_zone": "somewhere"}, None):
        fallback = run(night, person=person)
        assert fallback.skip_reason == "quiet_hours"
        assert "(the number)" in str(fallback.detail)


def test_the_default_zone_when_the_number_has_none(tmp_path: Path) -> None:
    defaults = Defaults(
        frozenset({"*"}),
        quiet_hours=QuietHoursConfig.model_validate(NIGHT),
        timezone="Asia/Tokyo",
    )
    [night] = load(tmp_path, 'destinations: [{id: w, body: hi, from: "+15005550006"}]', defaults)
    at_2300_tokyo = datetime(2026, 6, 11, 14, 0, tzinfo=UTC)
    held = run(night, "+80012345678", now=at_2300_tokyo)
    assert held.deferred
    assert "in Asia/Tokyo (SMS_DEFAULT_TIMEZONE)" in str(held.detail)
    # A destination may turn the service's quiet hours off.
    text = 'destinations: [{id: w, body: hi, from: "+15005550006", quiet_hours: false}]'
    [otp] = load(tmp_path, text, defaults)
    assert not run(otp, "+80012345678", now=at_2300_tokyo).deferred


def test_validity_counts_from_the_send_time(tmp_path: Path) -> None:
    text = """
destinations:
  - {id: now, body: hi, from: "+15005550006", validity: 10m}
  - {id: later, body: hi, from: "+15005550006", validity: 10m, delay: 1h}
"""
    now_destination, later = load(tmp_path, text)
    assert run(now_destination).expires_at == LATE_IN_LA + timedelta(minutes=10)
    assert run(later).expires_at == LATE_IN_LA + timedelta(hours=1, minutes=10)
    assert run(load(tmp_path, text, Defaults(validity=60))[0]).expires_at is not None


def test_a_deferral_past_the_validity_is_dropped(tmp_path: Path) -> None:
    text = """
destinations:
  - id: code
    body: "your code"
    from: "+15005550006"
    validity: 10m
    quiet_hours: {start: "21:00", end: "08:00"}
"""
    [code] = load(tmp_path, text)
    dropped = run(code)
    assert dropped.skip_reason == "quiet_hours"
    assert dropped.detail == (
        "quiet hours 21:00-08:00 in America/Los_Angeles (the number): dropped; held until "
        "the window opens at 2026-06-11T15:00:00Z, it would be past its validity "
        "(2026-06-11T06:10:00Z)"
    )


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("countries: [XX]", "not ISO country codes: XX"),
        ('quiet_hours: {start: 21:00, end: "08:00"}', "in quotes"),
        ('quiet_hours: {start: "21:00", end: "08:00", timezone: "{{ oops"}', "quiet_hours"),
        ("validity: 0", "validity"),
        ("quiet_hours: true", r"quiet_hours: must be a mapping \(key: value\) or false, got a b"),
        ('quiet_hours: {start: "21:00", end: "08:00", colour: red}', "quiet_hours.colour: unk"),
    ],
)
def test_bad_guard_settings_are_config_errors(tmp_path: Path, field: str, message: str) -> None:
    from app.destinations import ConfigError

    text = f'destinations: [{{id: w, body: hi, from: "+15005550006", {field}}}]'
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)
