"""Ingest: events in, one admitted delivery per matching destination out.

Also the destination test (`trace`): the same evaluation, reported step by step, with
nothing consumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.destinations import Destination, DestinationSet
from app.errors import Conflict
from app.metrics import Metrics
from app.pipeline.budget import MICROS, budget_day
from app.pipeline.events import Event
from app.pipeline.plan import Evaluation, Unmatched, evaluate, explain_unmatched
from app.pipeline.recipients import mask_phone
from app.services.event_tally import EventTally
from app.services.recent import RecentEvents
from app.sms.failures import ProviderError, ProviderRejected
from app.sms.message import OutboundMessage
from app.sms.provider import Provider
from app.store import keys
from app.store.deliveries import Admission, DeliveryLog
from app.store.records import BudgetCharge, Mode, NewDelivery

# Evaluating a batch yields the event loop at least this often.
_MAX_TURN_SECONDS = 0.02
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """Ingest's answer for one event: a decision per matching destination."""

    event: Event
    deliveries: list[Admission] = field(default_factory=list)
    # With no delivery: why each destination listening to the event's name did not match.
    unmatched: list[Unmatched] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "event_uuid": self.event.uuid,
            "event": self.event.name,
            "deliveries": [
                {
                    "destination": a.destination_id,
                    "decision": a.decision,
                    "delivery_id": a.delivery_id,
                    **({"detail": a.detail} if a.detail else {}),
                }
                for a in self.deliveries
            ],
        }
        if not self.deliveries:
            answer["detail"] = (
                "no destination matched"
                if self.unmatched
                else f"no destination listens to event {self.event.name!r}"
            )
            answer["unmatched"] = [
                {"destination": u.destination_id, "because": u.because} for u in self.unmatched
            ]
        return answer


class IngestService:
    """Runs events through the destinations and admits the resulting deliveries."""

    def __init__(
        self,
        destinations: DestinationSet,
        deliveries: DeliveryLog,
        provider: Provider,
        default_region: str,
        global_test_mode: bool,
        horizon: timedelta,
        metrics: Metrics,
        recent: RecentEvents | None = None,
        tally: EventTally | None = None,
    ) -> None:
        self._recent = recent
        self._tally = tally
        self._destinations = destinations
        self._deliveries = deliveries
        self._provider = provider
        self._default_region = default_region
        self._global_test_mode = global_test_mode
        self._horizon = horizon
        self._metrics = metrics
        self._guard_tripped: Callable[[Admission, Event], None] | None = None
        # Told of each `over_budget` decision and its event's name (it paused the
        # destination: DestinationPauses announces it); set by build_services.
        self.on_over_budget: Callable[[Admission, str], Awaitable[None]] | None = None

    @property
    def destinations(self) -> DestinationSet:
        return self._destinations

    def use_destinations(self, destinations: DestinationSet) -> None:
        """Swap in a reloaded destinations file (events evaluated from now on use it)."""
        self._destinations = destinations

    def on_guard_tripped(self, alarm: Callable[[Admission, Event], None]) -> None:
        """Call `alarm` (without awaiting anything) for each admission a velocity limit
        refused, with the event it came from: SystemEvents pages whoever is on call."""
        self._guard_tripped = alarm

    @property
    def recent(self) -> RecentEvents | None:
        """The sample of recent events (None: SMS_RECENT_EVENTS=0)."""
        return self._recent

    def mode_of(self, destination: Destination) -> Mode:
        """Test mode when the service or the destination says so."""
        return "test" if self._global_test_mode or destination.config.mode == "test" else "live"

    async def ingest(self, events: list[Event]) -> list[EventOutcome]:
        """Evaluate every event against its destinations; admit all in one round trip."""
        if self._recent is not None:
            self._recent.add(events)
        if self._tally is not None:
            self._tally.add(len(events))
        planned: list[tuple[int, NewDelivery]] = []
        destinations = self._destinations  # one file for the whole batch, even mid-reload
        window = self._provider.schedule_window
        now = datetime.now(UTC)
        metrics = self._metrics
        turn_started = time.monotonic()
        for index, event in enumerate(events):
            if time.monotonic() - turn_started > _MAX_TURN_SECONDS:
                # Rendering is bounded per template, not per batch: let /healthz and the
                # other requests in between.
                await asyncio.sleep(0)
                turn_started = time.monotonic()
            metrics.event_received(event.shape)
            candidates = destinations.candidates(event)
            if not candidates:
                continue
            context = event.template_context()
            for destination in candidates:
                evaluation = evaluate(
                    destination, event, context, self._default_region, now, self._horizon, window
                )
                if evaluation.matched:
                    planned.append((index, self._new_delivery(event, evaluation)))
        admissions = await self._deliveries.admit([new for _, new in planned])
        outcomes = [EventOutcome(event) for event in events]
        over_budget: list[tuple[Admission, str]] = []
        for (index, new), admission in zip(planned, admissions, strict=True):
            outcomes[index].deliveries.append(admission)
            metrics.decided(admission.destination_id, admission.decision)
            log_decision(admission, new.recipient, new.event_uuid)
            if admission.alarm is not None and self._guard_tripped is not None:
                self._guard_tripped(admission, events[index])
            if admission.decision == "over_budget":
                over_budget.append((admission, new.event_name))
        if self.on_over_budget is not None:
            for admission, event_name in over_budget:
                await self.on_over_budget(admission, event_name)
        for outcome in outcomes:
            if not outcome.deliveries:  # only these pay for the explanation
                listening = destinations.listening(outcome.event.name)
                outcome.unmatched.extend(explain_unmatched(listening, outcome.event))
        return outcomes

    def _new_delivery(self, event: Event, evaluation: Evaluation) -> NewDelivery:
        destination = evaluation.destination
        config = destination.config
        mode = self.mode_of(destination)
        stats = evaluation.stats
        recipient = evaluation.recipient
        # Velocity guards live texts only (test mode texts nobody): only they need the
        # number's country.
        velocity = destination.velocity if mode == "live" and recipient else ()
        return NewDelivery(
            destination_id=config.id,
            mode=mode,
            event_identity=event.identity,
            event_uuid=event.uuid,
            event_name=event.name,
            recipient=evaluation.recipient,
            body=evaluation.body,
            encoding=stats.encoding if stats else None,
            segments=stats.segments if stats else None,
            from_number=config.from_number,
            messaging_service_sid=config.messaging_service_sid,
            skip_reason=evaluation.skip_reason,
            detail=evaluation.detail,
            throttle_scope=config.throttle.scope if config.throttle else None,
            throttle_window_ms=config.throttle.window * 1000 if config.throttle else 0,
            due_ms=(
                int(evaluation.send_at.timestamp() * 1000)
                if evaluation.schedule == "local" and evaluation.send_at
                else None
            ),
            send_at=(
                evaluation.send_at.isoformat()
                if evaluation.schedule == "provider" and evaluation.send_at
                else None
            ),
            deferred=evaluation.deferred,
            media_urls=evaluation.media_urls,
            channel=config.channel,
            content_sid=config.content_sid,
            content_variables=evaluation.content_variables,
            quiet=evaluation.quiet,
            validity_period=evaluation.destination.validity,
            expires_ms=(
                int(evaluation.expires_at.timestamp() * 1000) if evaluation.expires_at else None
            ),
            country=evaluation.country if velocity else None,
            velocity=velocity,
            caps=destination.caps if destination.caps.rules else None,
            budget=budget_charge(evaluation),
        )

    async def trace(self, destination: Destination, event: Event, mock: bool) -> dict[str, Any]:
        """Run one event through one destination and report every step; consume nothing.

        Admission's checks are asked of the store read-only (`DeliveryLog.preview`, the
        admission script's own code): a tester re-running an event sees `duplicate_of`
        but still the decision admission would take next. With `mock=False` a message that
        is really sent (without claiming the throttle window); never to a recipient who
        opted out.
        """
        config = destination.config
        mode = self.mode_of(destination)
        evaluation = evaluate(
            destination,
            event,
            event.template_context(),
            self._default_region,
            datetime.now(UTC),
            self._horizon,
            self._provider.schedule_window,
        )
        stats = evaluation.stats
        trace: dict[str, Any] = {
            "destination": config.id,
            "enabled": config.enabled,
            "mode": mode,
            "event": {"uuid": event.uuid, "name": event.name},
            "matched": evaluation.matched,
            "unmatched_because": evaluation.unmatched_because,
            "recipient": evaluation.recipient,
            "body": evaluation.body,
            "length": stats.length if stats else None,
            "encoding": stats.encoding if stats else None,
            "segments": stats.segments if stats else None,
            "decision": "not_matched" if not evaluation.matched else evaluation.skip_reason,
            "detail": evaluation.detail,
            # Who holds it: "now", "local", or the provider by its name ("twilio").
            "schedule": self._provider.name.lower()
            if evaluation.schedule == "provider"
            else evaluation.schedule,
            "send_at": evaluation.send_at.isoformat() if evaluation.send_at else None,
            "throttle": None,
            "duplicate_of": None,
            "twilio_request": None,
            "twilio_response": None,
        }
        if not evaluation.matched:
            return trace
        new = self._new_delivery(event, evaluation)
        preview = await self._deliveries.preview(new)
        trace["duplicate_of"] = preview.duplicate_of
        message = evaluation.message
        if message is None:
            return trace
        check = preview.check
        if config.throttle and evaluation.recipient:
            held = check.verdict == "throttled"
            # A holder not sent yet frees the window a whole window after its text, at best.
            frees_at_ms = check.frees_at_ms or time.time_ns() // 1_000_000 + new.throttle_window_ms
            remaining_ms = frees_at_ms - time.time_ns() // 1_000_000
            trace["throttle"] = {
                "window_seconds": config.throttle.window,
                "scope": config.throttle.scope,
                "held_by": check.held_by if held else None,
                "remaining_seconds": round(max(remaining_ms, 0) / 1000, 3) if held else 0,
            }
        trace["twilio_request"] = self._provider.preview(message)
        trace["decision"] = "would_send"
        if evaluation.deferred:
            trace["decision"], trace["detail"] = "deferred", evaluation.detail
        if check.verdict in ("opted_out", "throttled", "blocked_velocity", "capped"):
            trace["decision"] = check.verdict
            trace["detail"] = check.detail(new.throttle_window_ms)
        elif preview.gate is not None:
            # Paused or over budget: what admission would answer (a real send from the
            # tester still goes: an operator checking a fix before resuming).
            trace["decision"], trace["detail"] = preview.gate
        if check.verdict == "opted_out":
            return trace  # consent: never texted, not even by a test
        if not mock:
            trace["twilio_response"] = await self._send_now(message, mode)
            trace["decision"] = "sent" if "sid" in trace["twilio_response"] else "failed"
        return trace

    async def _send_now(self, message: OutboundMessage, mode: Mode) -> dict[str, Any]:
        if self._global_test_mode:
            raise Conflict(
                f"the service is in test mode (no {self._provider.name} credentials or "
                "SMS_TEST_MODE)"
            )
        try:
            created = await self._provider.send(message)
        except ProviderRejected as err:
            return {
                "http_status": err.http_status,
                "code": err.code,
                "message": err.message,
                "more_info": err.more_info,
            }
        except ProviderError as err:
            return {"code": None, "message": str(err)}
        return {"sid": created.id, "status": created.status}


def budget_charge(evaluation: Evaluation) -> BudgetCharge | None:
    """What a delivery to be sent counts in its destination's budget today (None: the
    destination has no budget, or nothing will be sent)."""
    destination = evaluation.destination
    budget = destination.config.budget
    if budget is None or evaluation.skip_reason or not evaluation.recipient:
        return None
    segments = evaluation.stats.segments if evaluation.stats else 1
    day, day_end_ms = budget_day(datetime.now(UTC), destination.budget_zone)
    return BudgetCharge(
        key=keys.budget(destination.id, day),
        segments=segments,
        segments_limit=budget.segments_per_day,
        cost=budget.cost_micros(evaluation.recipient, segments),
        cost_limit=int(budget.per_day * MICROS) if budget.per_day is not None else None,
        day_end_ms=day_end_ms,
    )


def log_decision(admission: Admission, recipient: str | None, event_uuid: str | None) -> None:
    """One line per decision (the request id comes from the request's context)."""
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "decision %s",
        admission.decision,
        extra={
            "delivery_id": admission.delivery_id,
            "destination": admission.destination_id,
            "decision": admission.decision,
            "event_uuid": event_uuid,
            "recipient": mask_phone(recipient) if recipient else None,
            "detail": admission.detail,
        },
    )
