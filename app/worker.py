"""The send worker: consumes the queue, sends through Twilio (or mocks), records outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import datetime

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.pipeline.dispatch import (
    Failed,
    RetryLater,
    RetryPolicy,
    Sent,
    attempt_send,
    error_fields,
    mocked_send,
)
from app.pipeline.recipients import mask_phone
from app.store.deliveries import DeliveryLog, DeliveryRecord, Status
from app.store.queue import QueuedSend, SendQueue
from app.store.suppressions import suppression_value
from app.twilio.client import TwilioClient
from app.twilio.error_catalog import ErrorAction, action_for
from app.twilio.models import MESSAGE_STATUS_RANK, OutboundMessage

log = logging.getLogger(__name__)

_READ_BLOCK_MS = 200
_PROMOTE_EVERY_S = 0.1  # how late a due retry or held message may be moved to the queue
_PRUNE_EVERY_S = 600.0


def consumer_name() -> str:
    """Unique per worker, readable in XINFO: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SendWorker:
    """Sends queued deliveries with bounded concurrency until `stop()` is called."""

    def __init__(
        self,
        redis: Redis,
        deliveries: DeliveryLog,
        twilio: TwilioClient,
        policy: RetryPolicy,
        concurrency: int,
        reclaim_idle_s: int,
    ) -> None:
        self._redis = redis
        self._deliveries = deliveries
        self._queue = SendQueue(redis, consumer_name())
        self._twilio = twilio
        self._policy = policy
        self._concurrency = concurrency
        self._read_chunk = max(1, concurrency // 4)
        self._reclaim_idle_ms = reclaim_idle_s * 1000
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
            except RedisError as exc:
                # NOGROUP: the stream was deleted (a flushed or replaced Redis): recreate it.
                group_ready = group_ready and "NOGROUP" not in str(exc)
                log.warning("send worker: Redis error, retrying in 1 s: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
        if pruning is not None:
            pruning.cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight)

    async def _prune(self) -> None:
        try:
            removed = await self._deliveries.prune_indexes()
        except RedisError as exc:
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
        except Exception:
            # The entry stays pending and is reclaimed later: logged, never lost.
            log.exception("send worker: delivery %s failed unexpectedly", queued.delivery_id)
        finally:
            self._in_flight_ids.discard(queued.delivery_id)

    async def handle(self, queued: QueuedSend) -> None:
        """Send one delivery and record what happened, acknowledging the entry atomically."""
        verdict, record = await self._deliveries.begin_send(queued.delivery_id)
        if record is None:
            # Expired, already done by an earlier owner, or the recipient opted out.
            if verdict == "opted_out":
                log.info("delivery %s skipped: recipient opted out", queued.delivery_id)
            await self._ack(queued)
            return
        attempt = record.attempts
        message = _message_of(record)
        if record.mode == "test":
            outcome: Sent | RetryLater | Failed = mocked_send(self._twilio, message)
        else:
            outcome = await attempt_send(self._twilio, message, attempt, self._policy)
        # Once Twilio has answered, recording that answer must not be lost to a Redis blip:
        # an unrecorded send would be reclaimed and sent again.
        for pause in (0.1, 0.5, 2.0, None):
            try:
                await self._record(queued, record, outcome, attempt)
                return
            except RedisError:
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    async def _record(
        self,
        queued: QueuedSend,
        record: DeliveryRecord,
        outcome: Sent | RetryLater | Failed,
        attempt: int,
    ) -> None:
        if isinstance(outcome, Sent):
            updates: dict[str, str | int] = {
                "twilio_sid": outcome.sid,
                "twilio_status": outcome.twilio_status,
                "twilio_status_rank": MESSAGE_STATUS_RANK.get(outcome.twilio_status, 0),
            }
            if outcome.request_json:
                updates["twilio_request"] = outcome.request_json
            status: Status = "mocked" if record.mode == "test" else "sent"
            if outcome.twilio_status == "scheduled":
                status = "scheduled"  # Twilio holds it until SendAt
            await self._deliveries.finish_send(
                record, queued.entry_id, status, updates=updates, twilio_sid=outcome.sid
            )
            if log.isEnabledFor(logging.INFO):
                recipient = mask_phone(record.get("recipient") or "")
                log.info("delivery %s %s to %s sid=%s", record.id, status, recipient, outcome.sid)
        elif isinstance(outcome, RetryLater):
            detail = f"attempt {attempt} failed: {outcome.error}; retry in {outcome.delay:.2f} s"
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "retrying",
                detail=detail,
                updates=error_fields(outcome.error),
                retry_at_ms=int((time.time() + outcome.delay) * 1000),
            )
            log.info("delivery %s: %s", record.id, detail)
        else:
            # Twilio knows this number sent STOP: never try it again.
            opted_out = action_for(getattr(outcome.error, "code", None)) is ErrorAction.OPT_OUT
            await self._deliveries.finish_send(
                record,
                queued.entry_id,
                "failed",
                detail=f"attempt {attempt}: {outcome.error}",
                updates=error_fields(outcome.error),
                release_throttle=outcome.release_throttle,
                suppression=suppression_value("twilio_21610") if opted_out else None,
            )
            log.warning("delivery %s failed: %s", record.id, outcome.error)

    async def _ack(self, queued: QueuedSend) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            self._queue.ack(pipe, queued.entry_id)
            await pipe.execute()


def _message_of(record: DeliveryRecord) -> OutboundMessage:
    media = record.get("media_urls")
    validity = record.get("validity_period")
    send_at = record.get("send_at")
    return OutboundMessage(
        to=record.get("recipient") or "",
        body=record.get("body") or "",
        from_number=record.get("from"),
        messaging_service_sid=record.get("messaging_service_sid"),
        media_urls=tuple(orjson.loads(media)) if media else (),
        status_callback=record.get("status_callback"),
        validity_period=int(validity) if validity else None,
        send_at=datetime.fromisoformat(send_at) if send_at else None,
    )
