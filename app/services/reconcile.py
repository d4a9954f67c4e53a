"""Reconciliation: ask Twilio what callbacks did not tell us.

Each run (one process at a time across the fleet, by a Redis lock):

1. **Stale deliveries** — deliveries Twilio accepted more than `stale_after` ago but never
   reported final are fetched and moved forward (never backwards). A cursor walks the
   window so that messages without delivery receipts cannot starve the rest.
2. **External messages** — outbound messages sent on the account by other systems are
   imported into the delivery log as destination ``$external``. The account's list is read
   with ``DateSent>`` a cursor, page by page, at most `max_pages` per run; the cursor only
   moves once a whole sweep is done (at-least-once; known SIDs are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.pipeline.render import measure_body
from app.store import StorageError
from app.store.deliveries import DeliveryLog, StatusVerdict
from app.store.reconcile_state import ReconcileState
from app.store.records import ExternalMessage, id_bound
from app.twilio.client import TwilioClient
from app.twilio.errors import TwilioError
from app.twilio.models import TwilioMessage

log = logging.getLogger(__name__)

EXTERNAL_DESTINATION = "$external"
# Twilio gives up on a message after its validity period (at most 10 h): past three days a
# non-final status will not change any more.
_WINDOW = timedelta(days=3)
_STALE_BATCH = 200

# Delivery statuses whose Twilio side may still change.
_OPEN_STATUSES = ("sent", "scheduled")


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    checked: int = 0
    updated: int = 0
    imported: int = 0
    sweep_done: bool = False


class Reconciler:
    """One reconciliation run at a time; see the module docstring."""

    def __init__(
        self,
        state: ReconcileState,
        deliveries: DeliveryLog,
        twilio: TwilioClient,
        stale_after_s: int,
        max_pages: int,
        page_size: int = 100,
    ) -> None:
        self._state = state
        self._deliveries = deliveries
        self._twilio = twilio
        self._stale_after = timedelta(seconds=stale_after_s)
        self._max_pages = max_pages
        self._page_size = page_size

    async def run_once(self, lock_s: int) -> ReconcileReport | None:
        """Run if no other process holds the lock for this interval; None when skipped."""
        if not await self._state.try_lock(lock_s):
            return None
        checked, updated = await self._refresh_stale()
        imported, sweep_done = await self._import_external()
        return ReconcileReport(checked, updated, imported, sweep_done)

    async def run_forever(self, interval_s: int, stopping: asyncio.Event) -> None:
        """Every `interval_s` until `stopping` is set; errors are logged, never fatal."""
        while not stopping.is_set():
            try:
                report = await self.run_once(lock_s=interval_s)
                if report and (report.updated or report.imported):
                    log.info("reconcile: %s", report)
            except (StorageError, TwilioError, ValueError) as exc:
                log.warning("reconcile run failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval_s)

    async def _refresh_stale(self) -> tuple[int, int]:
        now = datetime.now(UTC)
        window_start = id_bound(int((now - _WINDOW).timestamp() * 1000))
        window_end = id_bound(int((now - self._stale_after).timestamp() * 1000))
        checked = updated = 0
        for status in _OPEN_STATUSES:
            cursor = max(await self._state.stale_cursor(status), window_start)
            ids = await self._deliveries.ids_before(status, cursor, window_end, _STALE_BATCH)
            # Wrap around once the window is walked: the oldest are checked again later.
            await self._state.set_stale_cursor(status, ids[-1] if len(ids) == _STALE_BATCH else "")
            for delivery_id in ids:
                record = await self._deliveries.get(delivery_id)
                sid = record.twilio_sid if record else None
                if not sid or record is None or record.mode != "live":
                    continue
                checked += 1
                try:
                    message = await self._twilio.fetch_message(sid)
                except TwilioError as exc:
                    log.warning("reconcile: cannot fetch %s: %s", sid, exc)
                    continue
                if await self._apply(delivery_id, message) == "applied":
                    updated += 1
        return checked, updated

    async def _apply(self, delivery_id: str, message: TwilioMessage) -> StatusVerdict:
        status = message.status or ""
        return await self._deliveries.apply_twilio_status(
            delivery_id, status, message.error_code, f"reconciled with Twilio: {status}"
        )

    async def _import_external(self) -> tuple[int, bool]:
        sweep = await self._state.external_sweep()
        if sweep.since is None:
            # First run: follow what is sent from now on, not the account's whole history.
            await self._state.start_following(datetime.now(UTC).isoformat())
            return 0, True
        since = datetime.fromisoformat(sweep.since)
        page_uri = sweep.page_uri
        newest_seen = datetime.fromisoformat(sweep.newest or sweep.since)
        imported = 0
        for _ in range(self._max_pages):
            page = await self._twilio.list_messages(
                date_sent_after=since, page_size=self._page_size, page_uri=page_uri or None
            )
            for message in page.messages:
                sent = _parse_date(message.date_sent) or _parse_date(message.date_created)
                if sent is not None:
                    newest_seen = max(newest_seen, sent)
                if (message.direction or "").startswith("outbound") and await self._import(
                    message, sent
                ):
                    imported += 1
            page_uri = page.next_page_uri
            # Progress is saved page by page, so a crash resumes instead of restarting.
            if page_uri:
                await self._state.save_page(page_uri, newest_seen.isoformat())
            else:
                # Sweep done: only now may the cursor pass what was processed.
                await self._state.finish_sweep(newest_seen.isoformat())
                return imported, True
        return imported, False

    async def _import(self, message: TwilioMessage, sent: datetime | None) -> bool:
        body = message.body or ""
        stats = measure_body(body)
        created = sent or datetime.now(UTC)
        segments = message.num_segments
        external = ExternalMessage(
            sid=message.sid,
            recipient=message.to or "",
            body=body,
            encoding=stats.encoding,
            segments=int(segments) if segments and segments.isdigit() else stats.segments,
            from_number=message.from_ or "",
            messaging_service_sid=message.messaging_service_sid or "",
            twilio_status=message.status or "",
            error_code=message.error_code,
            error_message=message.error_message or "",
            sent_ms=int(created.timestamp() * 1000),
        )
        return await self._deliveries.import_external(external, EXTERNAL_DESTINATION)


def _parse_date(value: str | None) -> datetime | None:
    """Twilio's dates are RFC 2822 (``Mon, 23 Nov 2026 10:00:00 +0000``)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None
