"""What the provider tells us: delivery status callbacks and inbound messages (opt-outs),
parsed by the provider (`Provider.parse_status` / `parse_inbound`) after its router has
checked their signature.

Both also become events (`$sms_status`, `$sms_inbound`) that destinations can match like
any analytics event — e.g. text the on-call number when a delivery fails.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from app.pipeline.events import Event, Person
from app.pipeline.recipients import InvalidRecipient, mask_phone, normalize_phone
from app.services.ingest import EventOutcome, IngestService
from app.services.pacing import SenderPacer
from app.sms.failures import ErrorAction
from app.sms.provider import Provider
from app.sms.reports import InboundMessage, StatusUpdate
from app.store import StorageError
from app.store.callbacks import CallbackLog, SuppressionChange, Webhook
from app.store.deliveries import DeliveryLog
from app.store.guard import PumpingBackoffs
from app.store.suppressions import provider_source

log = logging.getLogger(__name__)

# Actions whose callback puts the recipient on the suppression list.
_SUPPRESSING = frozenset({ErrorAction.OPT_OUT, ErrorAction.SUPPRESS_RECIPIENT})

SMS_STATUS_EVENT = "$sms_status"
SMS_INBOUND_EVENT = "$sms_inbound"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What a webhook did: `outcome` in a word, and the events it fed to destinations."""

    outcome: str
    events: list[EventOutcome]

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "events": [e.to_json() for e in self.events]}


class WebhookService:
    """Applies the provider's verified webhooks (its router checks the signature first)."""

    def __init__(
        self,
        provider: Provider,
        callbacks: CallbackLog,
        deliveries: DeliveryLog,
        ingest: IngestService,
        default_region: str,
        pumping: PumpingBackoffs | None = None,
        pacer: SenderPacer | None = None,
    ) -> None:
        self._provider = provider
        self._pumping = pumping
        self._pacer = pacer  # a slow-down code in a callback cuts its sender's pace
        self._callbacks = callbacks
        self._deliveries = deliveries
        self._ingest = ingest
        self._default_region = default_region

    async def status_callback(
        self,
        update: StatusUpdate,
        idempotency_token: str | None = None,
        named: str | None = None,
    ) -> WebhookResult:
        """Move the delivery forward, never backwards; applied once per message id and
        status (a replay answers "replayed" and changes nothing). `named`: the delivery
        the callback URL names; one whose attempt's outcome is not known yet adopts the
        message id (it is sent: the resolver will not send it again)."""
        sid, status = update.message_id, update.status
        deliveries = self._deliveries
        delivery_id = await deliveries.delivery_id_for(sid) if sid else None
        if delivery_id is None and named and sid and await deliveries.adopt_provider_id(named, sid):
            delivery_id = named
        change = None
        action, code = update.action, update.error_code
        if delivery_id and action in _SUPPRESSING and code is not None and update.recipient:
            # Opted out (21610), or cannot take texts at all (invalid, landline…).
            change = SuppressionChange(self._number(update.recipient), "add", provider_source(code))
        webhook = Webhook("status", sid, status, idempotency_token)
        if not await self._callbacks.apply_once(webhook, change):
            return WebhookResult("replayed", [])
        if delivery_id and action is ErrorAction.RETRY_SLOWER and self._pacer is not None:
            # 30001 (queue overflow), 30022 (10DLC rate)…: its sender went too fast.
            sender = update.messaging_service_sid or self._number(update.sender)
            if sender:
                with contextlib.suppress(StorageError):  # a lost cut is not worth a retry
                    await self._pacer.slow_down(sender)
        try:
            return await self._apply_status(update, delivery_id)
        except Exception:
            await self._forget(webhook)
            raise

    async def _apply_status(self, update: StatusUpdate, delivery_id: str | None) -> WebhookResult:
        sid, status, error_code = update.message_id, update.status, update.error_code
        if delivery_id is None:
            # Not ours (or past retention): keep it for inspection, answer 200 all the same.
            await self._callbacks.keep_unmatched(update.fields)
            return WebhookResult("unmatched", [])
        detail = f"{self._provider.name} status callback: {status}" + (
            f" (error {error_code})" if error_code else ""
        )
        applied = await self._deliveries.apply_provider_status(
            delivery_id, status, error_code, detail
        )
        if applied != "applied":
            return WebhookResult(applied, [])
        record = await self._deliveries.get(delivery_id)
        pumping = update.action is ErrorAction.BACK_OFF_NUMBER
        if record and record.recipient and self._pumping and pumping and error_code is not None:
            await self._pumping.back_off(record.recipient, error_code)  # its length: the code's
        # A destination fed by $sms_status must not feed itself: its own sends' callbacks
        # would trigger it again, forever.
        if record is None or record.event_name.startswith("$sms_"):
            return WebhookResult(applied, [])
        event = Event(
            name=SMS_STATUS_EVENT,
            uuid=f"{sid}:{status}",
            distinct_id=record.recipient,
            properties={
                "message_sid": sid,
                "status": status,
                "error_code": error_code,
                "delivery_id": delivery_id,
                "destination": record.destination,
                "to": record.recipient,
                "from": self._number(update.sender) or None,
                "source_event": record.event_name,
            },
            timestamp=None,
            person=Person(id=record.recipient, properties={"phone": record.recipient}),
            identity=f"{sid}:{status}",
        )
        return WebhookResult(applied, await self._ingest.ingest([event]))

    async def inbound_message(
        self, message: InboundMessage, idempotency_token: str | None = None
    ) -> WebhookResult:
        """Opt-out/opt-in keywords update the suppression list; every message is an event.
        Applied once per message id: a replayed STOP (say, after a START) changes nothing."""
        sender = self._number(message.sender)
        outcome = "received"
        change = None
        if sender and message.consent == "opt_out":
            change = SuppressionChange(sender, "add", "inbound", message.keyword)
            outcome = "opted_out"
        elif sender and message.consent == "opt_in":
            change = SuppressionChange(sender, "remove")
            outcome = "opted_in"
        sid = message.message_id
        webhook = Webhook("inbound", sid or "", "received", idempotency_token)
        if not await self._callbacks.apply_once(webhook, change):
            log.info("inbound message %s replayed: ignored", sid)
            return WebhookResult("replayed", [])
        if change is not None:
            log.info("%s %s (%s)", mask_phone(sender), outcome, message.keyword)
        try:
            return await self._inbound_event(message, sender, outcome)
        except Exception:
            await self._forget(webhook)
            raise

    async def _inbound_event(
        self, message: InboundMessage, sender: str, outcome: str
    ) -> WebhookResult:
        sid = message.message_id
        event = Event(
            name=SMS_INBOUND_EVENT,
            uuid=sid,
            distinct_id=sender,
            properties={
                "message_sid": sid,
                "from": sender,
                "to": self._number(message.recipient) or None,
                "body": message.body,
                "opt_out_type": message.opt_out_type,
                "outcome": outcome,
                "num_media": message.num_media,
            },
            timestamp=None,
            person=Person(id=sender, properties={"phone": sender}),
            identity=sid or f"inbound:{sender}:{message.body}",
        )
        return WebhookResult(outcome, await self._ingest.ingest([event]))

    async def _forget(self, webhook: Webhook) -> None:
        """Let the provider's retry of a webhook whose handling failed through (best effort: the
        error being raised is the one to report)."""
        with contextlib.suppress(StorageError):
            await self._callbacks.forget(webhook)

    def _number(self, raw: str) -> str:
        """`raw` in E.164; a sender that is no phone number (a short code, an alphanumeric
        sender id) as written, trimmed (the provider has taken off any channel prefix)."""
        try:
            return normalize_phone(raw, self._default_region)
        except InvalidRecipient:
            return raw.strip()
