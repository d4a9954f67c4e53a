"""The send worker: consumes the queue, sends through Twilio (or mocks), records outcomes."""

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
from datetime import datetime

from app.metrics import Metrics
from app.pipeline.dispatch import (
    Outcome,
    RetryLater,
    RetryPolicy,
    Sent,
    Unknown,
    attempt_send,
    mocked_send,
)
from app.pipeline.recipients import mask_phone
from app.services.resolver import find_created
from app.store import StorageError
from app.store.deliveries import DeliveryLog
from app.store.guard import PumpingBackoffs
from app.store.queue import QueuedSend, SendQueue
from app.store.records import (
    DeliveryRecord,
    DeliveryStatus,
    SendOutcome,
    id_created_ms,
    iso_ms,
)
from app.store.suppressions import suppression_value
from app.twilio.client import TwilioClient
from app.twilio.error_catalog import ErrorAction, action_for
from app.twilio.errors import TwilioApiError, TwilioError, TwilioTransportError
from app.twilio.models import VALIDITY_PERIOD_RANGE, OutboundMessage

VALIDITY_PERIOD_MAX = VALIDITY_PERIOD_RANGE[-1]

log = logging.getLogger(__name__)

_READ_BLOCK_MS = 200
_PROMOTE_EVERY_S = 0.1  # how late a due retry or held message may be moved to the queue
_PRUNE_EVERY_S = 600.0
_RECORD_RETRY_MAX_S = 2.0  # how often a held answer tries Redis again, at most
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
        twilio: TwilioClient,
        policy: RetryPolicy,
        concurrency: int,
        reclaim_idle_s: int,
        metrics: Metrics,
        twilio_timeout_s: float,
        list_delay_s: float,
        shutdown_grace_s: float = 20.0,
        pumping: PumpingBackoffs | None = None,
    ) -> None:
        self._pumping = pumping
        self._deliveries = deliveries
        self._metrics = metrics
        self._queue = queue
        self._twilio = twilio
        self._policy = policy
        self._concurrency = concurrency
        self._read_chunk = max(1, concurrency // 4)
        self._reclaim_idle_ms = reclaim_idle_s * 1000
        self._twilio_timeout = twilio_timeout_s
        self._list_delay_s = list_delay_s
        self._shutdown_grace_s = shutdown_grace_s
        # An attempt whose worker died could have reached Twilio until its deadline; the
        # list shows it at most `list_delay_s` after that.
        self._resolve_after_s = twilio_timeout_s + list_delay_s
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
        takes its entry over resolves it with Twilio (nothing is sent twice)."""
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
        whose outcome is unknown is resolved with Twilio first (`_resolve`)."""
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
        if verdict != "send" or record is None:
            # Expired, already done by an earlier owner, or the recipient opted out.
            if verdict == "opted_out":
                log.info(
                    "send skipped: recipient opted out",
                    extra={"delivery_id": queued.delivery_id},
                )
            await self._queue.ack(queued.entry_id)
            return
        attempt = record.attempts
        expires = _expiry(record)
        if expires is not None and time.time() >= expires:
            await self._expire(queued, record, expires)
            return
        message = message_of(record, expires)
        if record.mode == "test":
            outcome: Outcome = mocked_send()
        else:
            started = time.perf_counter()
            outcome = await attempt_send(self._twilio, message, attempt, self._policy)
            self._measure(queued, record, outcome, time.perf_counter() - started)
        # Once Twilio has answered, that answer is held until it is recorded, however long
        # Redis is away: an unrecorded answer would leave the outcome to the resolver, and
        # an answer is never handed back for resending.
        pause = 0.1
        while True:
            try:
                await self._record(queued, record, outcome, attempt)
                return
            except StorageError as exc:
                log.warning(
                    "delivery %s: cannot record Twilio's answer yet, retrying in %.1f s: %s",
                    record.id,
                    pause,
                    exc,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECORD_RETRY_MAX_S)

    async def _resolve(self, queued: QueuedSend, record: DeliveryRecord) -> bool:
        """Settle an attempt whose outcome is unknown: True when Twilio does not have it
        (send again), False when it was adopted or must wait (recorded either way)."""
        if record.mode == "test":
            return True  # a mocked send never left this process
        now_ms = time.time_ns() // 1_000_000
        due = record.resolve_after_ms or now_ms
        if now_ms < due:
            await self._park_unknown(queued, record, due, "Twilio's list is asked")
            return False
        try:
            async with asyncio.timeout(self._twilio_timeout):
                found = await find_created(
                    self._twilio,
                    message_of(record),
                    record.attempt_at_ms or 0,
                    self._taken_by(record),
                )
        except (TwilioError, TimeoutError) as exc:
            later = now_ms + int(self._list_delay_s * 1000)
            await self._park_unknown(queued, record, later, f"Twilio could not be asked ({exc})")
            return False
        if found is None:
            log.info(
                "delivery %s: attempt %d is not at Twilio: sending again",
                record.id,
                record.attempts,
            )
            return True
        await self._deliveries.finish_send(
            record,
            queued.entry_id,
            "sent",
            final=True,
            throttle="anchor",
            detail=f"attempt {record.attempts} found at Twilio: adopted, not sent again",
            outcome=SendOutcome(twilio_sid=found.sid, twilio_status=found.status or "queued"),
            attempt=record.attempts,
        )
        self._metrics.send_attempted(record.destination, "sent")
        log.info("delivery %s: attempt %d adopted sid=%s", record.id, record.attempts, found.sid)
        return False

    def _taken_by(self, record: DeliveryRecord) -> Callable[[str], Awaitable[bool]]:
        async def taken(sid: str) -> bool:
            owner = await self._deliveries.delivery_id_for_sid(sid)
            return owner is not None and owner != record.id

        return taken

    async def _park_unknown(
        self, queued: QueuedSend, record: DeliveryRecord, due_ms: int, why: str
    ) -> None:
        """Hold an unknown outcome in the delayed queue until Twilio can be asked."""
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

    async def _expire(self, queued: QueuedSend, record: DeliveryRecord, expires: float) -> None:
        """Record a message that outlived its validity, unsent: it is never sent late."""
        late = time.time() - expires
        at = iso_ms(int(expires * 1000))
        detail = f"unsent at its expiry ({at}, {late:.1f} s ago): not sent late"
        # Nothing of it is at Twilio: an earlier attempt of unknown outcome was resolved
        # (not found) before this point, so its throttle window is freed.
        await self._deliveries.finish_send(
            record, queued.entry_id, "expired", final=True, throttle="release", detail=detail
        )
        self._metrics.send_attempted(record.destination, "expired")
        log.info(
            "send expired unsent at %s",
            at,
            extra=_attempt_fields(record, record.attempts, "expired"),
        )

    def _measure(
        self, queued: QueuedSend, record: DeliveryRecord, outcome: Outcome, seconds: float
    ) -> None:
        """Metrics of one live attempt: Twilio's answer, its duration, event-to-send."""
        metrics = self._metrics
        if isinstance(outcome, Sent):
            metrics.twilio_answered(201, None, seconds)  # a create answers 201 Created
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
        if isinstance(err, TwilioApiError):
            metrics.twilio_answered(err.http_status, err.code, seconds)
        else:
            metrics.twilio_answered(None, None, seconds)
            if isinstance(err, TwilioTransportError) and err.request_sent:
                metrics.outcome_unknown(record.destination)

    async def _record(
        self,
        queued: QueuedSend,
        record: DeliveryRecord,
        outcome: Outcome,
        attempt: int,
    ) -> None:
        if isinstance(outcome, Sent):
            sent = SendOutcome(twilio_sid=outcome.sid, twilio_status=outcome.twilio_status)
            status: DeliveryStatus = "mocked" if record.mode == "test" else "sent"
            if outcome.twilio_status == "scheduled":
                status = "scheduled"  # Twilio holds it until SendAt
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
                    extra=_attempt_fields(record, attempt, status, twilio_sid=outcome.sid),
                )
        elif isinstance(outcome, RetryLater):
            detail = f"attempt {attempt} failed: {outcome.error}; retry in {outcome.delay:.2f} s"
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
                f"attempt {attempt}: outcome unknown (the request may have reached Twilio: "
                f"{outcome.error.message}); Twilio's list is asked at {iso_ms(due)}"
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
            # Twilio knows this number sent STOP: never try it again.
            code = getattr(outcome.error, "code", None)
            opted_out = action_for(code) is ErrorAction.OPT_OUT
            if code is not None and self._pumping is not None and record.recipient:
                await self._pumping.back_off(record.recipient, code)  # if a pumping answer
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "failed",
                final=True,
                throttle="release",  # Twilio refused: nothing was sent
                detail=f"attempt {attempt}: {outcome.error}",
                outcome=_error_outcome(outcome.error),
                suppression=suppression_value("twilio_21610") if opted_out else None,
                attempt=attempt,
            )
            self._metrics.send_attempted(record.destination, "failed")
            log.warning(
                "send attempt %d: failed: %s",
                attempt,
                outcome.error,
                extra=_attempt_fields(record, attempt, "failed", error=outcome.error),
            )


def _attempt_fields(
    record: DeliveryRecord,
    attempt: int,
    status: DeliveryStatus,
    *,
    twilio_sid: str | None = None,
    error: TwilioError | None = None,
) -> dict[str, object]:
    """The structured fields of a send attempt's log line (the recipient masked)."""
    fields: dict[str, object] = {
        "delivery_id": record.id,
        "destination": record.destination,
        "recipient": mask_phone(record.recipient or ""),
        "attempt": attempt,
        "status": status,
    }
    if twilio_sid:
        fields["twilio_sid"] = twilio_sid
    if isinstance(error, TwilioApiError):
        fields["http_status"] = error.http_status
        fields["error_code"] = error.code
    return fields


def _entry_ms(entry_id: str) -> int | None:
    """When a stream entry was added: its id is "<ms>-<seq>"."""
    head, _, _ = entry_id.partition("-")
    return int(head) if head.isdigit() else None


def _expiry(record: DeliveryRecord) -> float | None:
    """The record's expiry as epoch seconds, None when it has none."""
    return record.expires_ms / 1000 if record.expires_ms is not None else None


def message_of(record: DeliveryRecord, expires: float | None = None) -> OutboundMessage:
    """The message a delivery record stands for (sent before `expires`, epoch seconds:
    Twilio is given what is left of its lifetime)."""
    validity = record.validity_period
    if expires is not None and not record.send_at:
        # Twilio is given what is left of the lifetime, so it does not deliver it late
        # either (a message Twilio schedules counts its validity from its SendAt).
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


def _error_outcome(err: TwilioError) -> SendOutcome:
    """What a failed attempt records: Twilio's code and message, or what went wrong."""
    if isinstance(err, TwilioApiError):
        return SendOutcome(error_code=err.code, error_message=err.message)
    if isinstance(err, TwilioTransportError):
        return SendOutcome(error_message=err.message)
    return SendOutcome(error_message=str(err))
