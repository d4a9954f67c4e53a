"""Direct message operations: send (now or scheduled), get, list, cancel, redact, delete.

Sends go through the same admission, queue, retries and delivery log as destination
sends (pseudo-destination ``$api``); the other operations talk to the provider directly
and answer its own JSON for a message (`ProviderMessage.raw`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.bodies import MessageCreate
from app.errors import Conflict, InvalidInput, NotFound, Unavailable
from app.metrics import Metrics
from app.pipeline.render import measure_body
from app.pipeline.schedule import plan_schedule
from app.services.ingest import log_decision
from app.sms.failures import ProviderRejected
from app.sms.provider import Provider
from app.sms.reports import MessagePage, MessageQuery, ProviderMessage
from app.store.deliveries import Admission, DeliveryLog
from app.store.records import NewDelivery

API_DESTINATION = "$api"

_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")


class MessageService:
    """Message operations for the API and the CLI. Without a delivery log (commands that
    run without Redis) only the operations that talk to the provider alone work."""

    def __init__(
        self,
        deliveries: DeliveryLog | None,
        provider: Provider,
        global_test_mode: bool,
        retention_s: int,
        metrics: Metrics,
    ) -> None:
        self._deliveries = deliveries
        self._provider = provider
        self._test_mode = global_test_mode
        self._horizon = timedelta(seconds=retention_s)
        self._metrics = metrics

    async def send(self, request: MessageCreate, idempotency_key: str | None = None) -> Admission:
        """Queue one message (or hold it until `send_at`); answers the delivery id."""
        if request.send_at is not None and request.send_at <= datetime.now(UTC):
            # An explicit time in the past is a mistake worth hearing about, not "now".
            raise InvalidInput([{"field": "send_at", "problem": "is in the past"}])
        try:
            schedule = plan_schedule(
                request.send_at,
                datetime.now(UTC),
                request.messaging_service_sid is not None,
                self._horizon,
                self._provider.schedule_window,
            )
        except ValueError as exc:
            raise InvalidInput([{"field": "send_at", "problem": str(exc)}]) from None
        stats = measure_body(request.body or "")
        [admission] = await self._log().admit(
            [
                NewDelivery(
                    destination_id=API_DESTINATION,
                    mode="test" if self._test_mode else "live",
                    # A client retrying with the same Idempotency-Key gets the same delivery.
                    event_identity=f"key:{idempotency_key}"
                    if idempotency_key
                    else uuid.uuid4().hex,
                    event_uuid=None,
                    event_name=API_DESTINATION,
                    recipient=request.to,
                    body=request.body or "",
                    encoding=stats.encoding,
                    segments=stats.segments,
                    from_number=request.from_number,
                    messaging_service_sid=request.messaging_service_sid,
                    due_ms=(
                        int(request.send_at.timestamp() * 1000)
                        if schedule == "local" and request.send_at
                        else None
                    ),
                    media_urls=tuple(request.media_url),
                    status_callback=request.status_callback,
                    validity_period=request.validity_period,
                    send_at=(
                        request.send_at.isoformat()
                        if schedule == "provider" and request.send_at
                        else None
                    ),
                )
            ]
        )
        self._metrics.decided(admission.destination_id, admission.decision)
        log_decision(admission, request.to, None)
        return admission

    async def get(self, sid: str) -> ProviderMessage:
        return await self._provider.fetch(_sid(sid))

    async def list(self, query: MessageQuery) -> MessagePage:
        """One page of the account's messages; `cursor` is a previous page's `next_cursor`."""
        try:
            return await self._provider.list(query)
        except ValueError as exc:
            raise InvalidInput([{"field": "cursor", "problem": str(exc)}]) from None

    async def cancel(self, reference: str) -> dict[str, Any]:
        """Cancel a scheduled message: one we hold (by delivery id), or one the provider
        holds (by its id there)."""
        if reference.startswith("dl_"):
            record = await self._log().get(reference)
            if record is None:
                raise NotFound(f"no delivery with id {reference!r}")
            sid = record.provider_id
            if sid is None:
                canceled, status = await self._log().cancel_scheduled(reference)
                if not canceled:
                    raise Conflict(
                        f"delivery {reference} is {status}: only scheduled messages cancel"
                    )
                return {"delivery_id": reference, "status": "canceled"}
            reference = sid
        name = self._provider.name
        try:
            message = await self._provider.cancel(_sid(reference))
        except ProviderRejected as exc:
            if exc.conflict:
                # The same conflict as for a message we hold, so the same answer.
                raise Conflict(
                    f"message {reference} is no longer scheduled at {name}"
                    f"{_code(exc)}: only scheduled messages cancel"
                ) from None
            raise
        await self._record_status(message)
        return {"sid": message.id, "status": message.status}

    async def redact(self, sid: str) -> ProviderMessage:
        return await self._provider.redact(_sid(sid))

    async def delete(self, sid: str) -> None:
        try:
            await self._provider.delete(_sid(sid))
        except ProviderRejected as exc:
            if exc.conflict:
                raise Conflict(
                    f"{self._provider.name} will not delete {sid} before it is complete"
                    f"{_code(exc)}: cancel it or wait for a final status"
                ) from None
            raise

    def _log(self) -> DeliveryLog:
        if self._deliveries is None:
            raise Unavailable("the delivery log needs Redis (SMS_REDIS_URL)")
        return self._deliveries

    async def _record_status(self, message: ProviderMessage) -> None:
        delivery_id = await self._log().delivery_id_for(message.id)
        status = message.status or ""
        if delivery_id and status == "canceled":
            await self._log().apply_provider_status(
                delivery_id, status, None, f"canceled through {self._provider.name}"
            )


def _code(error: ProviderRejected) -> str:
    return f" (error {error.code})" if error.code is not None else ""


def _sid(value: str) -> str:
    if not _MESSAGE_SID.fullmatch(value):  # match's `$` allows a trailing newline
        raise InvalidInput([{"field": "sid", "problem": "must be SM… or MM… followed by 32 hex"}])
    return value
