"""Pausing and resuming destinations (API, CLI, console), and telling someone about it.

The pause itself is the store's (`app/store/pauses.py`): admission and the worker read it
inside their scripts. This service checks that the destination exists, stamps who paused
it, and emits `$sms_destination_paused` for the pauses nobody asked for (a Twilio code, a
spent budget): an operator who pauses a destination already knows.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.errors import InvalidInput, NotFound
from app.services.ingest import IngestService
from app.services.system_events import SystemEvents, caused_by_system_event
from app.store.deliveries import Admission
from app.store.pauses import Pause, PauseBook, pause_now
from app.store.records import now_ms

log = logging.getLogger(__name__)

MAX_REASON = 200


class DestinationPauses:
    """Pause, resume and list paused destinations; announce automatic pauses."""

    def __init__(self, book: PauseBook, ingest: IngestService, events: SystemEvents) -> None:
        self._book = book
        self._ingest = ingest
        self._events = events

    def _known(self, destination_id: str) -> None:
        if self._ingest.destinations.get(destination_id) is None:
            raise NotFound(f"no destination with id {destination_id!r}")

    async def pause(
        self, destination_id: str, reason: str | None = None, until: datetime | None = None
    ) -> Pause:
        """An operator pauses a destination (until `until`, or until resumed); a pause in
        force is replaced by this one."""
        self._known(destination_id)
        until_ms = None
        if until is not None:
            if until.tzinfo is None:
                raise InvalidInput([{"field": "until", "problem": "must include a time zone"}])
            until_ms = int(until.timestamp() * 1000)
            if until_ms <= now_ms():
                raise InvalidInput([{"field": "until", "problem": "must be in the future"}])
        words = (reason or "").strip()[:MAX_REASON] or "paused by an operator"
        pause = pause_now(destination_id, "operator", words, until_ms=until_ms)
        current, _ = await self._book.pause(pause, replace=True)
        log.warning("destination %s paused: %s", destination_id, current.describe())
        return current

    async def resume(self, destination_id: str) -> tuple[Pause | None, int]:
        """Lift a destination's pause: (the pause lifted or None, held deliveries released).
        Resuming a destination that is not paused is not an error (nothing changes)."""
        self._known(destination_id)
        lifted, released = await self._book.resume(destination_id)
        if lifted is not None:
            log.warning(
                "destination %s resumed (%d held deliveries released)", destination_id, released
            )
        return lifted, released

    async def get(self, destination_id: str) -> Pause | None:
        """A known destination's pause in force (None: not paused)."""
        self._known(destination_id)
        return await self._book.get(destination_id)

    async def all(self) -> dict[str, Pause]:
        """Every destination's pause in force, by destination id."""
        return await self._book.all()

    async def state(self, destination_id: str) -> dict[str, Any]:
        """The API's answer for one destination's pause state."""
        pause = await self.get(destination_id)
        return {
            "destination": destination_id,
            "paused": pause is not None,
            "pause": pause.to_json() if pause else None,
        }

    async def announce(self, pause: Pause) -> None:
        """Emit `$sms_destination_paused` for a pause (once per pause: the key is the
        destination and the pause's start). Never raises: the pause stands either way."""
        properties = {
            "destination": pause.destination,
            "by": pause.by,
            "reason": pause.reason,
            "code": pause.code,
            "since": pause.to_json()["since"],
            "until": pause.to_json()["until"],
            "detail": pause.describe(),
        }
        try:
            await self._events.emit(
                "$sms_destination_paused", f"{pause.destination}:{pause.since_ms}", properties
            )
        except Exception:
            log.exception("destination %s: $sms_destination_paused not emitted", pause.destination)

    async def after_admission(self, admission: Admission, event_name: str) -> None:
        """Ingest's hook: an `over_budget` decision paused its destination: announce it
        (unless the event is the service's own: it must not feed itself)."""
        if admission.decision != "over_budget" or caused_by_system_event(event_name):
            return
        pause = await self._book.get(admission.destination_id)
        if pause is not None and pause.by == "budget":
            await self.announce(pause)
