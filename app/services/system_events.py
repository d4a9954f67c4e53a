"""The service's own events: what it tells the destinations about itself.

`$sms_destination_paused` and `$sms_guard_triggered` run through ingest like any analytics
event, so a destination listening to them can text whoever is on call. Each has a stable
uuid built from what makes two of them "the same" (`key`): emitting it again within the
dedupe horizon is answered `duplicate`, so a guard that keeps tripping pages once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Literal

from app.pipeline.events import Event, Person
from app.services.ingest import EventOutcome, IngestService
from app.store import StorageError
from app.store.deliveries import Admission

log = logging.getLogger(__name__)

SystemEventName = Literal["$sms_destination_paused", "$sms_guard_triggered"]

# uuid5 namespace of the service's own events (any fixed uuid; this one is ours).
_NAMESPACE = uuid.UUID("6f1d2c1e-5b0a-4f61-9a43-8d1f3b2a7c90")
# Alarms this process raised, remembered so that an attack's thousands of refusals cost
# one emission each (other processes' are answered `duplicate` by ingest's dedupe).
_ALARMS_REMEMBERED = 1000


def caused_by_system_event(event_name: str) -> bool:
    """Whether an event is one of the service's own (`$sms_…`): what it causes must not
    emit another, or a destination fed by them could feed itself forever."""
    return event_name.startswith("$sms_")


class SystemEvents:
    """Emits the service's own events into ingest."""

    def __init__(self, ingest: IngestService) -> None:
        self._ingest = ingest
        self._raised: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def guard_tripped(self, admission: Admission, cause: Event) -> None:
        """A velocity limit refused a delivery: emit `$sms_guard_triggered` once per
        alarm (a block or country, and the hour), in the background — the event's own
        answer does not wait — and never for an event that is itself a system event."""
        alarm = admission.alarm
        if alarm is None or alarm in self._raised or caused_by_system_event(cause.name):
            return
        if len(self._raised) >= _ALARMS_REMEMBERED:
            self._raised.clear()
        self._raised.add(alarm)
        properties = {
            "guard": "velocity",
            "decision": admission.decision,
            "alarm": alarm,
            "destination": admission.destination_id,
            "delivery_id": admission.delivery_id,
            "source_event": cause.name,
            "detail": admission.detail,
        }
        task = asyncio.create_task(self._raise(alarm, properties))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _raise(self, alarm: str, properties: dict[str, Any]) -> None:
        try:
            await self.emit("$sms_guard_triggered", alarm, properties)
        except StorageError as exc:
            self._raised.discard(alarm)  # the next refusal tries again
            log.warning("$sms_guard_triggered %s not emitted: %s", alarm, exc)

    async def settled(self) -> None:
        """Wait for the alarms being emitted (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def emit(
        self, name: SystemEventName, key: str, properties: dict[str, Any]
    ) -> EventOutcome:
        """Ingest `name` with `properties`; `key` says which emissions are the same event
        (e.g. the destination and the day it paused)."""
        event_id = str(uuid.uuid5(_NAMESPACE, f"{name}:{key}"))
        event = Event(
            name=name,
            uuid=event_id,
            distinct_id="smsdest",
            properties=properties,
            timestamp=None,
            person=Person(id="smsdest"),
            identity=event_id,
        )
        [outcome] = await self._ingest.ingest([event])
        log.warning("%s %s: %s", name, key, properties)
        return outcome
