"""The pure part of the pipeline: event × destination → what would be sent, or why not.

`evaluate` runs match → recipient → render → length check for one destination and keeps
every intermediate result, so the same code serves ingest and the destination test trace.
No I/O here: dedupe, throttle and the queue are the store's job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

from app.destinations import Destination
from app.pipeline.events import Event
from app.pipeline.filters import match_filters
from app.pipeline.quiet_hours import (
    NeverOpen,
    QuietHoursConfig,
    parse_quiet_spec,
    quiet_spec,
    release_time,
    zone_named,
)
from app.pipeline.recipients import (
    ALL_COUNTRIES,
    InvalidRecipient,
    mask_phone,
    normalize_recipient,
    time_zones_of,
)
from app.pipeline.render import (
    BodyStats,
    BodyTooLong,
    RenderError,
    fit_body,
    measure_body,
    render_template,
)
from app.pipeline.schedule import Schedule, plan_schedule
from app.sms.message import MAX_BODY_CHARS, OutboundMessage
from app.sms.provider import ScheduleWindow

MAX_URL_LENGTH = 2048
_HTTP_URL = re.compile(r"https?://[^\s]+")

SkipReason = Literal[
    "invalid_recipient", "render_error", "body_too_long", "blocked_country", "quiet_hours"
]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One destination's verdict on one event."""

    destination: Destination
    matched: bool
    unmatched_because: str | None = None
    recipient: str | None = None
    country: str | None = None  # the recipient's ISO region, from the same parse
    body: str | None = None
    stats: BodyStats | None = None
    skip_reason: SkipReason | None = None
    detail: str | None = None
    send_at: datetime | None = None  # from `delay`, `send_at` or quiet hours; None: now
    schedule: Schedule = "now"
    deferred: bool = False  # held by quiet hours until `send_at` (`detail` says why)
    expires_at: datetime | None = None  # from `validity`: never sent after this
    media_urls: tuple[str, ...] = ()  # MMS (or one WhatsApp media)
    content_variables: str | None = None  # a Content template's variables, as JSON
    quiet: str | None = None  # the quiet hours the worker checks again (`quiet_spec`)

    @property
    def message(self) -> OutboundMessage | None:
        """The SMS to create, when the evaluation says one should be sent."""
        if not self.matched or self.skip_reason or self.recipient is None or self.body is None:
            return None
        config = self.destination.config
        return OutboundMessage(
            to=self.recipient,
            body=self.body,
            from_number=config.from_number,
            messaging_service_sid=config.messaging_service_sid,
            send_at=self.send_at if self.schedule == "provider" else None,
            media_urls=self.media_urls,
            channel=config.channel,
            content_sid=config.content_sid,
            content_variables=self.content_variables,
        )


def evaluate(
    destination: Destination,
    event: Event,
    context: dict[str, Any],
    default_region: str,
    now: datetime,
    horizon: timedelta,
    schedule_window: ScheduleWindow | None = None,
) -> Evaluation:
    """Run one event through one destination's filters, recipient and body templates.

    `now` and `horizon` (how far ahead a message may be held) place a delayed message;
    `schedule_window`: the send times the provider holds a message for itself.
    """
    config = destination.config
    if config.events is not None and event.name not in config.events:
        return Evaluation(destination, False, f"event {event.name!r} is not in events")
    failure = filter_failure(destination, event)
    if failure is not None:
        return Evaluation(destination, False, failure)

    try:
        recipient, country = normalize_recipient(
            render_template(destination.to_template, context), default_region
        )
    except (RenderError, InvalidRecipient) as exc:
        return Evaluation(destination, True, skip_reason="invalid_recipient", detail=f"to: {exc}")
    blocked = _country_block(destination, recipient, country)
    if blocked is not None:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            country=country,
            skip_reason="blocked_country",
            detail=blocked,
        )

    limit = MAX_BODY_CHARS[config.channel]
    try:
        rendered = render_template(destination.body_template, context)
        stats = measure_body(rendered)
        body = fit_body(rendered, config.on_overflow, limit)
        media_urls = _media_urls(destination, context)
        content_variables = _content_variables(destination, context)
    except RenderError as exc:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            country=country,
            skip_reason="render_error",
            detail=str(exc),
        )
    except BodyTooLong:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            country=country,
            body=rendered,
            stats=stats,
            skip_reason="body_too_long",
            detail=f"body is {stats.length} characters (UTF-16 units); the limit is {limit}"
            + (" on WhatsApp" if config.channel == "whatsapp" else ""),
        )
    if body is not rendered:
        stats = measure_body(body)
    try:
        send_at = _send_at(destination, context, now)
        expires_at = _expiry(destination, send_at, now)
        quiet, quiet_carried = _quiet_hours(
            destination, context, recipient, send_at or now, expires_at
        )
        if isinstance(quiet, _Deferral):
            send_at = quiet.release
            schedule: Schedule = "local"  # held by us: the provider's scheduling is not ours
        else:
            has_service = config.messaging_service_sid is not None
            schedule = plan_schedule(send_at, now, has_service, horizon, schedule_window)
    except (RenderError, ValueError) as exc:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            country=country,
            body=body,
            stats=stats,
            skip_reason="render_error",
            detail=f"send_at: {exc}",
        )
    if isinstance(quiet, str):
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            country=country,
            body=body,
            stats=stats,
            skip_reason="quiet_hours",
            detail=quiet,
        )
    return Evaluation(
        destination,
        True,
        recipient=recipient,
        country=country,
        body=body,
        stats=stats,
        send_at=send_at if schedule != "now" else None,
        schedule=schedule,
        deferred=quiet is not None,
        detail=quiet.detail if quiet is not None else None,
        expires_at=expires_at,
        media_urls=media_urls,
        content_variables=content_variables,
        quiet=quiet_carried,
    )


def _media_urls(destination: Destination, context: dict[str, Any]) -> tuple[str, ...]:
    """The rendered `media_url`s; one rendering empty (a null property) is left out."""
    urls = []
    for index, template in enumerate(destination.media_templates):
        url = render_template(template, context)
        if not url:
            continue
        if len(url) > MAX_URL_LENGTH or not _HTTP_URL.fullmatch(url):
            raise RenderError(f"media_url.{index}: {_short_repr(url)} is not an http(s) URL")
        urls.append(url)
    return tuple(urls)


def _content_variables(destination: Destination, context: dict[str, Any]) -> str | None:
    """The Content template's variables rendered, as the JSON object Twilio takes."""
    if not destination.content_variable_templates:
        return None
    values = {}
    for key, template in destination.content_variable_templates:
        try:
            values[key] = render_template(template, context)
        except RenderError as exc:
            raise RenderError(f"content_variables.{key}: {exc}") from None
    return orjson.dumps(values).decode()


def _country_block(destination: Destination, recipient: str, country: str) -> str | None:
    """Why `recipient` (in `country`) is outside the destination's countries; None when it
    is inside."""
    allowed = destination.countries
    if ALL_COUNTRIES in allowed or country in allowed:
        return None
    where = "no country (a non-geographic number)" if country == "001" else country
    return (
        f"{mask_phone(recipient)} is a number in {where}; this destination texts "
        f"{', '.join(sorted(allowed))} only ({destination.countries_from})"
    )


def _expiry(destination: Destination, send_at: datetime | None, now: datetime) -> datetime | None:
    # The lifetime counts from the time the message is meant to go (its delay or send_at
    # included), so that `delay: 1h` with `validity: 10m` is not always expired.
    if destination.validity is None:
        return None
    return (send_at or now) + timedelta(seconds=destination.validity)


@dataclass(frozen=True, slots=True)
class _Deferral:
    release: datetime
    detail: str


def _quiet_hours(
    destination: Destination,
    context: dict[str, Any],
    recipient: str,
    at: datetime,
    expires_at: datetime | None,
) -> tuple[_Deferral | str | None, str | None]:
    """None when `at` is outside the destination's quiet hours for this recipient; else a
    deferral (action `defer`) or the reason it is dropped (`drop`, or a deferral that would
    outlive the message's validity). Second: the quiet hours the delivery carries, for
    the worker to check again before each attempt (`quiet_spec`; None: it has none)."""
    config = destination.quiet_hours
    if config is None:
        return None, None
    zones, source = _recipient_zones(destination, context, recipient)
    try:
        release = release_time(config, zones, at)
    except NeverOpen:
        # Zones spread wider than the open part of the day (a toll-free +1 number spans
        # Guam to Newfoundland): the service's default zone decides.
        zones, source = [destination.default_zone], "SMS_DEFAULT_TIMEZONE"
        release = release_time(config, zones, at)
    # The number's zones are found again from the number; any other is written down.
    spec = quiet_spec(config, None if source.startswith("the number") else [z.key for z in zones])
    if release is None:
        return None, spec
    return _quiet_verdict(config, zones, source, release, expires_at), spec


def _quiet_verdict(
    config: QuietHoursConfig,
    zones: Sequence[ZoneInfo],
    source: str,
    release: datetime,
    expires_at: datetime | None,
) -> _Deferral | str:
    """A message inside quiet hours until `release`: deferred, or why it is dropped."""
    names = ", ".join(zone.key for zone in zones[:3]) + (", …" if len(zones) > 3 else "")
    window = f"quiet hours {config.describe()} in {names} ({source})"
    opens = release.isoformat().replace("+00:00", "Z")
    if config.action == "drop":
        return f"{window}: dropped; the window opens at {opens}"
    if expires_at is not None and release > expires_at:
        expiry = expires_at.isoformat().replace("+00:00", "Z")
        return (
            f"{window}: dropped; held until the window opens at {opens}, it would be past "
            f"its validity ({expiry})"
        )
    return _Deferral(release, f"{window}: held until {opens}")


def _recipient_zones(
    destination: Destination, context: dict[str, Any], recipient: str
) -> tuple[list[ZoneInfo], str]:
    """The zones the recipient may be in, and where they come from: the template's zone
    when it renders a known one, else the number's zones, else SMS_DEFAULT_TIMEZONE."""
    if destination.quiet_timezone is not None:
        try:
            named = zone_named(render_template(destination.quiet_timezone, context))
        except RenderError:
            named = None  # an event without the property: the number tells instead
        if named is not None:
            return [named], "quiet_hours.timezone"
    number_zones = [z for name in time_zones_of(recipient) if (z := zone_named(name))]
    if number_zones:
        return number_zones, "the number's zones" if len(number_zones) > 1 else "the number"
    return [destination.default_zone], "SMS_DEFAULT_TIMEZONE"


def filter_failure(destination: Destination, event: Event) -> str | None:
    """Which of the destination's filters `event` fails, and with what value; None if none."""
    result = match_filters(destination.config.filters, event)
    if result.matched or result.failed is None:
        return None
    value = result.failed.property_of(event)
    shown = "it is not set" if value is None else f"it is {_short_repr(value)}"
    return f"filter failed: {result.failed.describe()} ({shown})"


def _short_repr(value: Any) -> str:
    # Event data is anyone's: show enough to recognize it, never all of it.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# The answer for an event nobody texted lists at most this many destinations.
MAX_UNMATCHED_LISTED = 20


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A destination listening to an event's name that did not match it, and why."""

    destination_id: str
    because: str


def explain_unmatched(listening: Sequence[Destination], event: Event) -> list[Unmatched]:
    """For an event no destination matched: why each one listening to its name did not.

    Only called for such events, so that matching ones pay nothing for it.
    """
    return [
        Unmatched(d.id, filter_failure(d, event) or "no filter failed")
        for d in listening[:MAX_UNMATCHED_LISTED]
    ]


def _send_at(destination: Destination, context: dict[str, Any], now: datetime) -> datetime | None:
    config = destination.config
    if config.delay is not None:
        return now + timedelta(seconds=config.delay)
    if destination.send_at_template is None:
        return None
    text = render_template(destination.send_at_template, context)
    if not text:
        raise ValueError("rendered empty (a null or blank value), not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class QuietRecheck:
    """A queued message found inside its quiet hours when about to be sent."""

    release: datetime  # when the window opens
    drop: bool  # dropped (action `drop`, or the opening is past its validity), else deferred
    detail: str


def recheck_quiet_hours(
    spec: str, recipient: str, at: datetime, expires_at: datetime | None
) -> QuietRecheck | None:
    """The worker's check, before each attempt, of the quiet hours a delivery carries
    (`Evaluation.quiet`): None when `at` is outside them, so that a backoff, pacing or a
    backlog never texts anyone inside their window."""
    config, names = parse_quiet_spec(spec)
    if names:
        zones, source = [z for name in names if (z := zone_named(name))], "as admitted"
    else:
        zones = [z for name in time_zones_of(recipient) if (z := zone_named(name))]
        source = "the number's zones" if len(zones) > 1 else "the number"
    if not zones:
        return None
    try:
        release = release_time(config, zones, at)
    except NeverOpen:
        return None  # admission wrote the default zone down in that case
    if release is None:
        return None
    verdict = _quiet_verdict(config, zones, source, release, expires_at)
    if isinstance(verdict, str):
        return QuietRecheck(release, True, verdict)
    return QuietRecheck(release, False, verdict.detail)
