"""Reconciliation: ask the provider what callbacks did not tell us.

Each run (one process at a time across the fleet, by a Redis lock):

1. **Stale deliveries** — deliveries the provider accepted more than `stale_after` ago but never
   reported final are fetched and moved forward (never backwards). A cursor walks the
   window so that messages without delivery receipts cannot starve the rest.
2. **External messages** — outbound messages sent on the account by other systems are
   imported into the delivery log as destination ``$external``. The account's list is read
   for messages sent on or after a cursor's day, page by page, at most `max_pages` per run;
   the cursor only moves once a whole sweep is done (at-least-once; known ids are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.pipeline.render import measure_body
from app.sms.failures import ProviderError
from app.sms.provider import Provider
from app.sms.reports import MessageQuery, ProviderMessage
from app.store import StorageError
from app.store.deliveries import DeliveryLog, StatusVerdict
from app.store.reconcile_state import ReconcileState
from app.store.records import ExternalMessage, id_bound

log = logging.getLogger(__name__)

EXTERNAL_DESTINATION = "$external"
# A provider gives up on a message after its validity period (at most 10 h): past three
# days a non-final status will not change any more.
_WINDOW = timedelta(days=3)
_STALE_BATCH = 200

# Delivery statuses whose provider side may still change.
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
        provider: Provider,
        stale_after_s: int,
        max_pages: int,
        page_size: int = 100,
    ) -> None:
        self._state = state
        self._deliveries = deliveries
        self._provider = provider
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
            except (StorageError, ProviderError, ValueError) as exc:
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
                message_id = record.provider_id if record else None
                if not message_id or record is None or record.mode != "live":
                    continue
                checked += 1
                try:
                    message = await self._provider.fetch(message_id)
                except ProviderError as exc:
                    log.warning("reconcile: cannot fetch %s: %s", message_id, exc)
                    continue
                if await self._apply(delivery_id, message) == "applied":
                    updated += 1
        return checked, updated

    async def _apply(self, delivery_id: str, message: ProviderMessage) -> StatusVerdict:
        status = message.status or ""
        detail = f"reconciled with {self._provider.name}: {status}"
        return await self._deliveries.apply_provider_status(
            delivery_id, status, message.error_code, detail
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
            page = await self._provider.list(
                MessageQuery(
                    date_sent_after=since, page_size=self._page_size, cursor=page_uri or None
                )
            )
            for message in page.messages:
                sent = _moment(message.sent_ms) or _moment(message.created_ms)
                if sent is not None:
                    newest_seen = max(newest_seen, sent)
                outbound = message.direction in ("api", "outbound")
                if outbound and await self._import(message, sent):
                    imported += 1
            page_uri = page.next_cursor
            # Progress is saved page by page, so a crash resumes instead of restarting.
            if page_uri:
                await self._state.save_page(page_uri, newest_seen.isoformat())
            else:
                # Sweep done: only now may the cursor pass what was processed.
                await self._state.finish_sweep(newest_seen.isoformat())
                return imported, True
        return imported, False

    async def _import(self, message: ProviderMessage, sent: datetime | None) -> bool:
        body = message.body or ""
        stats = measure_body(body)
        created = sent or datetime.now(UTC)
        external = ExternalMessage(
            provider_id=message.id,
            recipient=message.to or "",
            body=body,
            encoding=stats.encoding,
            segments=message.segments if message.segments is not None else stats.segments,
            from_number=message.from_number or "",
            messaging_service_sid=message.messaging_service_sid or "",
            provider_status=message.status or "",
            error_code=message.error_code,
            error_message=message.error_message or "",
            sent_ms=int(created.timestamp() * 1000),
            imported_from=self._provider.name,
        )
        return await self._deliveries.import_external(external, EXTERNAL_DESTINATION)


def _moment(epoch_ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms is not None else None
