"""The pure part of the pipeline: event × destination → what would be sent, or why not.

`evaluate` runs match → recipient → render → length check for one destination and keeps
every intermediate result, so the same code serves ingest and the destination test trace.
No I/O here: dedupe, throttle and the queue are the store's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.destinations import Destination
from app.pipeline.events import Event
from app.pipeline.filters import match_filters
from app.pipeline.recipients import InvalidRecipient, normalize_phone
from app.pipeline.render import (
    BodyStats,
    BodyTooLong,
    RenderError,
    fit_body,
    measure_body,
    render_template,
)
from app.pipeline.schedule import Schedule, plan_schedule
from app.twilio.models import OutboundMessage

SkipReason = Literal["invalid_recipient", "render_error", "body_too_long"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One destination's verdict on one event."""

    destination: Destination
    matched: bool
    unmatched_because: str | None = None
    recipient: str | None = None
    body: str | None = None
    stats: BodyStats | None = None
    skip_reason: SkipReason | None = None
    detail: str | None = None
    send_at: datetime | None = None  # from `delay` or `send_at`; None: send now
    schedule: Schedule = "now"

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
            send_at=self.send_at if self.schedule == "twilio" else None,
        )


def evaluate(
    destination: Destination,
    event: Event,
    context: dict[str, Any],
    default_region: str,
    now: datetime,
    horizon: timedelta,
) -> Evaluation:
    """Run one event through one destination's filters, recipient and body templates.

    `now` and `horizon` (how far ahead a message may be held) place a delayed message.
    """
    config = destination.config
    if config.events is not None and event.name not in config.events:
        return Evaluation(destination, False, f"event {event.name!r} is not in events")
    failure = filter_failure(destination, event)
    if failure is not None:
        return Evaluation(destination, False, failure)

    try:
        recipient = normalize_phone(
            render_template(destination.to_template, context), default_region
        )
    except (RenderError, InvalidRecipient) as exc:
        return Evaluation(destination, True, skip_reason="invalid_recipient", detail=f"to: {exc}")

    try:
        rendered = render_template(destination.body_template, context)
    except RenderError as exc:
        return Evaluation(
            destination, True, recipient=recipient, skip_reason="render_error", detail=str(exc)
        )
    stats = measure_body(rendered)
    try:
        body = fit_body(rendered, config.on_overflow)
    except BodyTooLong:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            body=rendered,
            stats=stats,
            skip_reason="body_too_long",
            detail=f"body is {stats.length} characters (UTF-16 units); the limit is 1600",
        )
    if body is not rendered:
        stats = measure_body(body)
    try:
        send_at = _send_at(destination, context, now)
        schedule = plan_schedule(send_at, now, config.messaging_service_sid is not None, horizon)
    except (RenderError, ValueError) as exc:
        return Evaluation(
            destination,
            True,
            recipient=recipient,
            body=body,
            stats=stats,
            skip_reason="render_error",
            detail=f"send_at: {exc}",
        )
    return Evaluation(
        destination,
        True,
        recipient=recipient,
        body=body,
        stats=stats,
        send_at=send_at if schedule != "now" else None,
        schedule=schedule,
    )


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
