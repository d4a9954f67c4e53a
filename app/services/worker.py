"""The send worker: consumes the queue, sends through the provider (test mode's for test
deliveries), records outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from app.metrics import Metrics
from app.pipeline.dispatch import (
    Outcome,
    RetryLater,
    RetryPolicy,
    Sent,
    Unknown,
    attempt_send,
)
from app.pipeline.plan import recheck_quiet_hours
from app.pipeline.recipients import mask_phone
from app.services.pacing import SenderPacer
from app.services.resolver import find_created
from app.services.system_events import caused_by_system_event
from app.sms.failures import ErrorAction, ProviderError, ProviderRejected, ProviderUnreachable
from app.sms.message import VALIDITY_PERIOD_MAX, OutboundMessage
from app.sms.mocked import MockedProvider
from app.sms.provider import Provider
from app.store import StorageError
from app.store.deliveries import DeliveryLog
from app.store.guard import PumpingBackoffs
from app.store.pauses import Pause, PauseBook, pause_now
from app.store.queue import QueuedSend, SendQueue
from app.store.records import (
    DeliveryRecord,
    DeliveryStatus,
    Mode,
    SendOutcome,
    id_created_ms,
    iso_ms,
    mocked_sid,
)
from app.store.suppressions import provider_source, suppression_value

log = logging.getLogger(__name__)

_READ_BLOCK_MS = 200
_PROMOTE_EVERY_S = 0.1  # how late a due retry or held message may be moved to the queue
_PRUNE_EVERY_S = 600.0
_RECORD_RETRY_MAX_S = 2.0  # how often a held answer tries Redis again, at most
# A pacing wait this short is slept through, even by a worker told to stop; a longer one
# watches for the stop (and then parks the message).
_SHORT_WAIT_S = 1.0
# A slot this close counts as now. The schedule is not moved by it, so the pace holds on
# average; only a fast sender's lease (slots a fraction of a millisecond apart) goes out in
# bursts of at most 20 ms of its rate, instead of a hundred sends each sleeping a moment.
_EARLY_S = 0.02
# A stream entry written this soon after its delivery was created was queued by admission
# itself (not promoted later from a hold or a retry): its send measures event-to-send.
_QUEUED_AT_ADMISSION_MS = 1000


def consumer_name() -> str:
    """Unique per worker, readable in XINFO: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SendWorker:
    """Sends queued deliveries with bounded concurrency until `stop()` is called."""

    def __init__(
        self,
        queue: SendQueue,
        deliveries: DeliveryLog,
        provider: Provider,
        policy: RetryPolicy,
        concurrency: int,
        reclaim_idle_s: int,
        metrics: Metrics,
        shutdown_grace_s: float = 20.0,
        pacer: SenderPacer | None = None,
        pace_hold_s: float = 0.0,
        pumping: PumpingBackoffs | None = None,
        *,
        pauses: PauseBook,
        announce_pause: Callable[[Pause], Awaitable[None]] | None = None,
    ) -> None:
        self._pumping = pumping
        self._deliveries = deliveries
        # Live sends wait for their sender's turn (None: unpaced); at most `pace_hold_s`
        # holding the stream entry, longer in the delayed set (Settings.pacing_hold_s).
        self._pacer = pacer
        self._pace_hold_s = pace_hold_s
        self._pauses = pauses
        self._announce_pause = announce_pause  # $sms_destination_paused (DestinationPauses)
        self._metrics = metrics
        self._queue = queue
        self._provider = provider
        # A delivery sends through its mode's provider: test mode's sends nothing.
        self._providers: dict[Mode, Provider] = {
            "live": provider,
            # Its ids derive from the delivery's (the store does not keep them).
            "test": MockedProvider(provider, id_for=mocked_sid),
        }
        self._policy = policy
        self._concurrency = concurrency
        self._read_chunk = max(1, concurrency // 4)
        self._reclaim_idle_ms = reclaim_idle_s * 1000
        self._send_timeout = provider.send_timeout_s
        self._list_delay_s = provider.list_delay_s
        self._shutdown_grace_s = shutdown_grace_s
        # An attempt whose worker died could have reached the provider until its deadline;
        # its list shows it at most `list_delay_s` after that.
        self._resolve_after_s = provider.send_timeout_s + provider.list_delay_s
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._in_flight_ids: set[str] = set()  # never reclaim what this worker is sending

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Main loop; survives Redis outages (and a lost stream) by backing off and retrying."""
        group_ready = False
        next_reclaim = next_promote = 0.0
        # Pruning SCANs the keyspace: never at start-up, never in the way of sending.
        next_prune = time.monotonic() + _PRUNE_EVERY_S
        pruning: asyncio.Task[None] | None = None
        while not self._stopping.is_set():
            try:
                if not group_ready:
                    await self._queue.ensure_group()
                    group_ready = True
                if time.monotonic() >= next_promote:
                    next_promote = time.monotonic() + _PROMOTE_EVERY_S
                    await self._queue.promote_due()
                if time.monotonic() >= next_prune and (pruning is None or pruning.done()):
                    next_prune = time.monotonic() + _PRUNE_EVERY_S
                    pruning = asyncio.create_task(self._prune())
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self._reclaim_idle_ms / 2000
                    self._start(await self._queue.reclaim(self._reclaim_idle_ms))
                free = self._concurrency - len(self._in_flight)
                # While busy, read in chunks: one XREADGROUP per finished send would add a
                # round trip per message.
                if free <= 0 or (free < self._read_chunk and len(self._in_flight) > free):
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                self._start(await self._queue.read(free, _READ_BLOCK_MS))
            except StorageError as exc:
                # NOGROUP: the stream was deleted (a flushed or replaced Redis): recreate it.
                group_ready = group_ready and "NOGROUP" not in str(exc)
                log.warning("send worker: Redis error, retrying in 1 s: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
        if pruning is not None:
            pruning.cancel()
        await self._finish_in_flight()

    async def _finish_in_flight(self) -> None:
        """On the way out: in-flight sends get the shutdown grace to finish; the rest are
        cancelled where they stand — an attempt already out stays `sending`, and whoever
        takes its entry over resolves it with the provider (nothing is sent twice)."""
        if not self._in_flight:
            return
        _, late = await asyncio.wait(self._in_flight, timeout=self._shutdown_grace_s)
        if late:
            log.warning(
                "send worker: %d send(s) still in flight after the %g s grace: left to the "
                "resolver",
                len(late),
                self._shutdown_grace_s,
            )
            for task in late:
                task.cancel()
            await asyncio.wait(late)

    async def _prune(self) -> None:
        try:
            removed = await self._deliveries.prune_indexes()
        except StorageError as exc:
            log.warning("send worker: pruning the delivery indexes failed: %s", exc)
            return
        if removed:
            log.info("send worker: pruned %d index entries past retention", removed)

    def _start(self, sends: list[QueuedSend]) -> None:
        for queued in sends:
            if queued.delivery_id in self._in_flight_ids:
                continue
            self._in_flight_ids.add(queued.delivery_id)
            task = asyncio.create_task(self._handle_safely(queued))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _handle_safely(self, queued: QueuedSend) -> None:
        try:
            await self.handle(queued)
        except StorageError as exc:
            # Redis away, read-only, or the attempt not on enough replicas: nothing was
            # sent; the entry stays pending and is taken over later (resolved first).
            log.warning("send worker: delivery %s left for later: %s", queued.delivery_id, exc)
        except Exception:
            # The entry stays pending and is reclaimed later: logged, never lost.
            log.exception("send worker: delivery %s failed unexpectedly", queued.delivery_id)
        finally:
            self._in_flight_ids.discard(queued.delivery_id)

    async def handle(self, queued: QueuedSend) -> None:
        """Send one delivery and record what happened, acknowledging the entry atomically.

        The attempt is recorded (`sending`) before the request leaves; an earlier attempt
        whose outcome is unknown is resolved with the provider first (`_resolve`)."""
        resolved: int | None = None
        while True:
            verdict, record = await self._deliveries.begin_send(
                queued.delivery_id, resolve_after_s=self._resolve_after_s, resolved=resolved
            )
            if verdict != "resolve" or record is None:
                break
            if not await self._resolve(queued, record):
                return
            resolved = record.attempts
        if verdict == "paused" and record is not None:
            await self._hold(queued, record, "destination paused: held until it resumes")
            return
        if verdict != "send" or record is None:
            # Expired, already done by an earlier owner, or the recipient opted out.
            if verdict == "opted_out":
                log.info(
                    "send skipped: recipient opted out",
                    extra={"delivery_id": queued.delivery_id},
                )
                await self._pauses.release_budget(queued.delivery_id)
            await self._queue.ack(queued.entry_id)
            return
        attempt = record.attempts
        expires = _expiry(record)
        if expires is not None and time.time() >= expires:
            await self._expire(queued, record, expires)
            return
        if await self._held_by_quiet_hours(queued, record, expires):
            return
        if record.mode == "live" and self._pacer is not None:
            waited = await self._pace(queued, record, expires)
            if waited is None:
                return  # parked until its turn, or expired before it
            if waited and await self._held_by_quiet_hours(queued, record, expires):
                return
        message = message_of(record, expires)
        provider = self._providers[record.mode]
        started = time.perf_counter()
        outcome = await attempt_send(provider, message, attempt, self._policy)
        if provider.delivers:
            self._measure(queued, record, outcome, time.perf_counter() - started)
            outcome = await self._paced_outcome(record, outcome)
        # Once the provider has answered, that answer is held until it is recorded, however
        # long Redis is away: an unrecorded answer would leave the outcome to the resolver,
        # and an answer is never handed back for resending.
        pause = 0.1
        while True:
            try:
                await self._record(queued, record, outcome, attempt)
                return
            except StorageError as exc:
                log.warning(
                    "delivery %s: cannot record the provider's answer yet, retrying in %.1f s: %s",
                    record.id,
                    pause,
                    exc,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECORD_RETRY_MAX_S)

    async def _resolve(self, queued: QueuedSend, record: DeliveryRecord) -> bool:
        """Settle an attempt whose outcome is unknown: True when the provider does not have
        it (send again), False when it was adopted or must wait (recorded either way)."""
        provider = self._providers[record.mode]
        if not provider.delivers:
            return True  # a mocked send never left this process
        name = provider.name
        now_ms = time.time_ns() // 1_000_000
        due = record.resolve_after_ms or now_ms
        if now_ms < due:
            await self._park_unknown(queued, record, due, f"{name}'s list is asked")
            return False
        try:
            async with asyncio.timeout(self._send_timeout):
                found = await find_created(
                    provider,
                    message_of(record),
                    record.attempt_at_ms or 0,
                    self._taken_by(record),
                )
        except (ProviderError, TimeoutError) as exc:
            later = now_ms + int(self._list_delay_s * 1000)
            await self._park_unknown(queued, record, later, f"{name} could not be asked ({exc})")
            return False
        if found is None:
            log.info(
                "delivery %s: attempt %d is not at %s: sending again",
                record.id,
                record.attempts,
                name,
            )
            return True
        await self._deliveries.finish_send(
            record,
            queued.entry_id,
            "sent",
            final=True,
            throttle="anchor",
            detail=f"attempt {record.attempts} found at {name}: adopted, not sent again",
            outcome=SendOutcome(provider_id=found.id, provider_status=found.status or "queued"),
            attempt=record.attempts,
        )
        self._metrics.send_attempted(record.destination, "sent")
        log.info("delivery %s: attempt %d adopted id=%s", record.id, record.attempts, found.id)
        return False

    def _taken_by(self, record: DeliveryRecord) -> Callable[[str], Awaitable[bool]]:
        async def taken(provider_id: str) -> bool:
            owner = await self._deliveries.delivery_id_for(provider_id)
            return owner is not None and owner != record.id

        return taken

    async def _park_unknown(
        self, queued: QueuedSend, record: DeliveryRecord, due_ms: int, why: str
    ) -> None:
        """Hold an unknown outcome in the delayed queue until the provider can be asked."""
        await self._deliveries.finish_send(
            record,
            queued.entry_id,
            "unknown",
            final=False,
            detail=f"attempt {record.attempts}: outcome unknown; {why} at {iso_ms(due_ms)}",
            outcome=SendOutcome(resolve_after_ms=due_ms),
            retry_at_ms=due_ms,
            attempt=record.attempts,
        )

    async def _held_by_quiet_hours(
        self, queued: QueuedSend, record: DeliveryRecord, expires: float | None
    ) -> bool:
        """A message about to go inside its recipient's quiet hours (a backoff, a pace or
        a backlog pushed it there) is deferred to the window's opening — or dropped, when
        its destination drops or the opening is past its validity. True when held."""
        if record.quiet is None or record.recipient is None:
            return False
        expires_at = datetime.fromtimestamp(expires, UTC) if expires is not None else None
        found = recheck_quiet_hours(record.quiet, record.recipient, datetime.now(UTC), expires_at)
        if found is None:
            return False
        if found.drop:
            await self._deliveries.hold_send(
                record, queued.entry_id, "skipped", detail=found.detail, reason="quiet_hours"
            )
        else:
            release_ms = int(found.release.timestamp() * 1000)
            await self._deliveries.hold_send(
                record, queued.entry_id, "scheduled", detail=found.detail, due_ms=release_ms
            )
        log.info(
            "send held by quiet hours: %s",
            found.detail,
            extra=_attempt_fields(
                record, record.attempts, "skipped" if found.drop else "scheduled"
            ),
        )
        return True

    async def _pace(
        self, queued: QueuedSend, record: DeliveryRecord, expires: float | None
    ) -> bool | None:
        """Wait for the sender's turn: False when it is now, True after a wait here, None
        when the message left the worker (parked in the delayed set until its turn, which
        is further off than this worker may hold it, or expired before it)."""
        assert self._pacer is not None
        sender = record.messaging_service_sid or record.from_number
        if not sender:
            return False
        slot = _reserved_slot(record)
        rate: float | None = None
        if slot is None:
            deadline = int(expires * 1000) if expires is not None else None
            reservation = await self._pacer.reserve(sender, record.segments or 1, deadline)
            rate = reservation.rate
            if reservation.refused:
                turn = iso_ms(reservation.slot_ms)
                await self._expire(
                    queued,
                    record,
                    expires or 0.0,
                    f"its sender's next turn ({turn}, at {rate:g} segments/s) is past its "
                    f"expiry ({iso_ms(int((expires or 0) * 1000))}): not sent late",
                )
                return None
            slot = reservation.slot_ms
        wait = (slot - time.time_ns() // 1_000_000) / 1000
        if wait <= _EARLY_S:
            return False
        if wait <= min(_SHORT_WAIT_S, self._pace_hold_s):
            await asyncio.sleep(wait)  # cheap: no task, one timer
            return True
        if wait <= self._pace_hold_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
            if not self._stopping.is_set():
                return True
        # Too far off to hold the entry (or this worker is stopping): the delivery waits in
        # the delayed set, its turn kept in the record, and is not reserved a second time.
        pace = f" at {rate:g} segments/s" if rate is not None else ""
        await self._deliveries.hold_send(
            record,
            queued.entry_id,
            "queued",
            detail=f"paced: sender {_masked_sender(record)}{pace}; its turn at {iso_ms(slot)}",
            due_ms=slot,
            paced_ms=slot,
        )
        return None

    async def _paced_outcome(self, record: DeliveryRecord, outcome: Outcome) -> Outcome:
        """Tell the pacer how the send went: a slow-down code cuts the sender's rate (and
        the retry's detail says so), a success earns some back."""
        sender = record.messaging_service_sid or record.from_number
        if self._pacer is None or not sender:
            return outcome
        if isinstance(outcome, Sent):
            self._pacer.succeeded(sender)
            return outcome
        err = outcome.error
        if not isinstance(err, ProviderRejected) or err.action is not ErrorAction.RETRY_SLOWER:
            return outcome
        try:
            rate, cut = await self._pacer.slow_down(sender)
        except StorageError as exc:
            # The provider's answer matters more than the cut: it is recorded all the same.
            log.warning("cannot slow sender %s down: %s", _masked_sender(record), exc)
            return outcome
        if isinstance(outcome, RetryLater):
            what = "slowed to" if cut else "already slowed to"
            return RetryLater(
                outcome.delay,
                outcome.error,
                f"sender {_masked_sender(record)} {what} {rate:g} segments/s",
            )
        return outcome

    async def _expire(
        self,
        queued: QueuedSend,
        record: DeliveryRecord,
        expires: float,
        why: str | None = None,
    ) -> None:
        """Record a message that outlived its validity, unsent: it is never sent late."""
        late = time.time() - expires
        at = iso_ms(int(expires * 1000))
        detail = why or f"unsent at its expiry ({at}, {late:.1f} s ago): not sent late"
        # Nothing of it is at the provider: an earlier attempt of unknown outcome was resolved
        # (not found) before this point, so its throttle window is freed.
        await self._deliveries.finish_send(
            record, queued.entry_id, "expired", final=True, throttle="release", detail=detail
        )
        await self._pauses.release_budget(record.id)
        self._metrics.send_attempted(record.destination, "expired")
        log.info(
            "send expired unsent at %s",
            at,
            extra=_attempt_fields(record, record.attempts, "expired"),
        )

    def _measure(
        self, queued: QueuedSend, record: DeliveryRecord, outcome: Outcome, seconds: float
    ) -> None:
        """Metrics of one live attempt: the provider's answer, its duration, event-to-send."""
        metrics = self._metrics
        if isinstance(outcome, Sent):
            metrics.provider_answered(201, None, seconds)  # a create answers 201 Created
            created_ms = id_created_ms(record.id)
            queued_ms = _entry_ms(queued.entry_id)
            if (
                record.attempts == 1
                and created_ms is not None
                and queued_ms is not None
                and queued_ms - created_ms <= _QUEUED_AT_ADMISSION_MS
            ):
                metrics.event_to_send(max(0.0, time.time() - created_ms / 1000))
            return
        err = outcome.error
        if isinstance(err, ProviderRejected):
            metrics.provider_answered(err.http_status, err.code, seconds)
        else:
            metrics.provider_answered(None, None, seconds)
            if isinstance(err, ProviderUnreachable) and err.request_sent:
                metrics.outcome_unknown(record.destination)

    async def _record(
        self,
        queued: QueuedSend,
        record: DeliveryRecord,
        outcome: Outcome,
        attempt: int,
    ) -> None:
        if isinstance(outcome, Sent):
            sent = SendOutcome(provider_id=outcome.provider_id, provider_status=outcome.status)
            status: DeliveryStatus = "sent"
            if outcome.status == "mocked":
                status = "mocked"  # test mode's provider: nothing left the process
            elif outcome.status == "scheduled":
                status = "scheduled"  # the provider holds it until its send time
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                status,
                final=True,
                throttle="anchor",  # the window runs from the text actually sent
                outcome=sent,
                attempt=attempt,
            )
            self._metrics.send_attempted(record.destination, status)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "send attempt %d: %s",
                    attempt,
                    status,
                    extra=_attempt_fields(record, attempt, status, provider_id=outcome.provider_id),
                )
        elif isinstance(outcome, RetryLater):
            detail = f"attempt {attempt} failed: {outcome.error}; retry in {outcome.delay:.2f} s"
            if outcome.note:
                detail += f"; {outcome.note}"
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "retrying",
                final=False,
                detail=detail,
                outcome=_error_outcome(outcome.error),
                retry_at_ms=int((time.time() + outcome.delay) * 1000),
                attempt=attempt,
            )
            self._metrics.send_attempted(record.destination, "retrying")
            log.info(
                "send attempt %d: retrying: %s",
                attempt,
                detail,
                extra=_attempt_fields(record, attempt, "retrying", error=outcome.error),
            )
        elif isinstance(outcome, Unknown):
            due = time.time_ns() // 1_000_000 + int(self._list_delay_s * 1000)
            detail = (
                f"attempt {attempt}: outcome unknown (the request may have reached "
                f"{self._provider.name}: {outcome.error.message}); {self._provider.name}'s "
                f"list is asked at {iso_ms(due)}"
            )
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "unknown",
                final=False,
                detail=detail,
                outcome=SendOutcome(
                    error_message="outcome unknown: " + outcome.error.message,
                    resolve_after_ms=due,
                ),
                retry_at_ms=due,
                attempt=attempt,
            )
            self._metrics.send_attempted(record.destination, "unknown")
            log.warning(
                "send attempt %d: unknown: %s",
                attempt,
                detail,
                extra=_attempt_fields(record, attempt, "unknown", error=outcome.error),
            )
        else:
            action = _action(outcome.error)
            if action is ErrorAction.PAUSE_DESTINATION and not caused_by_system_event(
                record.event_name
            ):
                await self._pause_destination(queued, record, outcome.error, attempt)
                return
            if action is ErrorAction.BACK_OFF_NUMBER and self._pumping and record.recipient:
                code = outcome.error.code if isinstance(outcome.error, ProviderRejected) else None
                if code is not None:  # the back-off's length is the code's (app/guard.py)
                    await self._pumping.back_off(record.recipient, code)
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "failed",
                final=True,
                throttle="release",  # the provider refused: nothing was sent
                detail=f"attempt {attempt}: {outcome.error}",
                outcome=_error_outcome(outcome.error),
                suppression=_suppression(outcome.error),
                attempt=attempt,
            )
            await self._pauses.release_budget(record.id)  # nothing was sent
            self._metrics.send_attempted(record.destination, "failed")
            log.warning(
                "send attempt %d: failed: %s",
                attempt,
                outcome.error,
                extra=_attempt_fields(record, attempt, "failed", error=outcome.error),
            )

    async def _hold(
        self,
        queued: QueuedSend,
        record: DeliveryRecord,
        detail: str,
        *,
        attempt: int | None = None,
        error: ProviderError | None = None,
    ) -> None:
        """Hold a delivery of a paused destination: neither sent nor failed, it waits in the
        delayed set (its window kept) and goes when the destination resumes."""
        outcome = _error_outcome(error) if error is not None else None
        await self._pauses.hold(record, queued.entry_id, detail, attempt=attempt, outcome=outcome)
        self._metrics.send_attempted(record.destination, "held")
        log.info(
            "send held: %s",
            detail,
            extra=_attempt_fields(record, attempt or record.attempts, "held", error=error),
        )

    async def _pause_destination(
        self, queued: QueuedSend, record: DeliveryRecord, error: ProviderError, attempt: int
    ) -> None:
        """The provider says the sender or the account is unfit (a PAUSE_DESTINATION code):
        pause the destination (the first such answer's pause stands), hold this message
        (nothing was sent) and announce the pause once."""
        rejected = error if isinstance(error, ProviderRejected) else None
        code = rejected.code if rejected else None
        reason = (rejected.meaning if rejected else None) or str(error)
        pause, created = await self._pauses.pause(
            pause_now(record.destination, "error_code", reason, code=code), replace=False
        )
        await self._hold(
            queued,
            record,
            f"attempt {attempt}: {error}; destination paused: held until it resumes",
            attempt=attempt,
            error=error,
        )
        if created:
            log.warning("destination %s paused: %s", record.destination, pause.describe())
            if self._announce_pause is not None:
                await self._announce_pause(pause)


def _attempt_fields(
    record: DeliveryRecord,
    attempt: int,
    status: DeliveryStatus,
    *,
    provider_id: str | None = None,
    error: ProviderError | None = None,
) -> dict[str, object]:
    """The structured fields of a send attempt's log line (the recipient masked)."""
    fields: dict[str, object] = {
        "delivery_id": record.id,
        "destination": record.destination,
        "recipient": mask_phone(record.recipient or ""),
        "attempt": attempt,
        "status": status,
    }
    if provider_id:
        fields["twilio_sid"] = provider_id  # the log field's name, as dashboards know it
    if isinstance(error, ProviderRejected):
        fields["http_status"] = error.http_status
        fields["error_code"] = error.code
    return fields


def _suppression(error: ProviderError) -> bytes | None:
    """What a refusal puts on the suppression list: the recipient opted out (21610), or
    cannot take texts at all (invalid, landline, unreachable…: the catalog's
    `suppress_recipient`), with the code as its source; None for other refusals."""
    if not isinstance(error, ProviderRejected) or error.code is None:
        return None
    if error.action in (ErrorAction.OPT_OUT, ErrorAction.SUPPRESS_RECIPIENT):
        return suppression_value(provider_source(error.code))
    return None


def _reserved_slot(record: DeliveryRecord) -> int | None:
    """The slot on its sender's schedule reserved for this very attempt while the
    delivery waited outside the stream (`paced`: "<attempt>:<ms>"), if any."""
    attempt, _, slot = (record.paced or "").partition(":")
    return int(slot) if attempt == str(record.attempts) and slot.isdigit() else None


def _masked_sender(record: DeliveryRecord) -> str:
    if record.messaging_service_sid:
        return record.messaging_service_sid
    return mask_phone(record.from_number or "")


def _entry_ms(entry_id: str) -> int | None:
    """When a stream entry was added: its id is "<ms>-<seq>"."""
    head, _, _ = entry_id.partition("-")
    return int(head) if head.isdigit() else None


def _expiry(record: DeliveryRecord) -> float | None:
    """The record's expiry as epoch seconds, None when it has none."""
    return record.expires_ms / 1000 if record.expires_ms is not None else None


def message_of(record: DeliveryRecord, expires: float | None = None) -> OutboundMessage:
    """The message a delivery record stands for (sent before `expires`, epoch seconds:
    the provider is given what is left of its lifetime)."""
    validity = record.validity_period
    if expires is not None and not record.send_at:
        # The provider is given what is left of the lifetime, so it does not deliver it
        # late either (a message it schedules counts its validity from its send time).
        validity = min(validity or VALIDITY_PERIOD_MAX, math.ceil(expires - time.time()))
    if validity is not None:
        validity = max(1, min(validity, VALIDITY_PERIOD_MAX))
    return OutboundMessage(
        to=record.recipient or "",
        body=record.body or "",
        from_number=record.from_number,
        messaging_service_sid=record.messaging_service_sid,
        media_urls=record.media_urls,
        status_callback=record.status_callback,
        validity_period=validity,
        channel=record.channel,
        content_sid=record.content_sid,
        content_variables=record.content_variables,
        send_at=datetime.fromisoformat(record.send_at) if record.send_at else None,
        callback_ref=record.id,
    )


def _error_outcome(err: ProviderError) -> SendOutcome:
    """What a failed attempt records: the provider's code and message, or what went wrong."""
    if isinstance(err, ProviderRejected):
        return SendOutcome(error_code=err.code, error_message=err.message)
    return SendOutcome(error_message=err.message)


def _action(err: ProviderError) -> ErrorAction | None:
    """What the provider's catalog says about a refusal (None: no answer came back)."""
    return err.action if isinstance(err, ProviderRejected) else None
