"""The service's own events: what it tells the destinations about itself.

`$sms_destination_paused` and `$sms_guard_triggered` run through ingest like any analytics
event, so a destination listening to them can text whoever is on call. Each has a stable
uuid built from what makes two of them "the same" (`key`): emitting it again within the
dedupe horizon is answered `duplicate`, so a guard that keeps tripping pages once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from app.pipeline.events import Event, Person
from app.services.ingest import EventOutcome, IngestService

log = logging.getLogger(__name__)

SystemEventName = Literal["$sms_destination_paused", "$sms_guard_triggered"]

# uuid5 namespace of the service's own events (any fixed uuid; this one is ours).
_NAMESPACE = uuid.UUID("6f1d2c1e-5b0a-4f61-9a43-8d1f3b2a7c90")


def caused_by_system_event(event_name: str) -> bool:
    """Whether an event is one of the service's own (`$sms_…`): what it causes must not
    emit another, or a destination fed by them could feed itself forever."""
    return event_name.startswith("$sms_")


class SystemEvents:
    """Emits the service's own events into ingest."""

    def __init__(self, ingest: IngestService) -> None:
        self._ingest = ingest

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
