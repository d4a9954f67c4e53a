"""What Twilio tells us: delivery status callbacks and inbound messages (opt-outs).

Both also become events (`$sms_status`, `$sms_inbound`) that destinations can match like
any analytics event — e.g. text the on-call number when a delivery fails.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.pipeline.events import Event, Person
from app.pipeline.recipients import InvalidRecipient, mask_phone, normalize_phone
from app.services.ingest import EventOutcome, IngestService
from app.store import StorageError
from app.store.callbacks import CallbackLog, SuppressionChange, Webhook
from app.store.deliveries import DeliveryLog
from app.store.guard import PumpingBackoffs
from app.twilio.error_catalog import ErrorAction, action_for
from app.twilio.models import address_number

log = logging.getLogger(__name__)

# Twilio's default opt-out and opt-in keywords (whole body, case-insensitive, trimmed).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})

SMS_STATUS_EVENT = "$sms_status"
SMS_INBOUND_EVENT = "$sms_inbound"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What a webhook did: `outcome` in a word, and the events it fed to destinations."""

    outcome: str
    events: list[EventOutcome]

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "events": [e.to_json() for e in self.events]}


class TwilioWebhooks:
    """Applies verified Twilio webhooks (the router checks the signature first)."""

    def __init__(
        self,
        callbacks: CallbackLog,
        deliveries: DeliveryLog,
        ingest: IngestService,
        default_region: str,
        pumping: PumpingBackoffs | None = None,
    ) -> None:
        self._pumping = pumping
        self._callbacks = callbacks
        self._deliveries = deliveries
        self._ingest = ingest
        self._default_region = default_region

    async def status_callback(
        self,
        form: Mapping[str, str],
        idempotency_token: str | None = None,
        named: str | None = None,
    ) -> WebhookResult:
        """Move the delivery forward, never backwards; applied once per MessageSid and
        status (a replay answers "replayed" and changes nothing). `named`: the delivery
        the callback URL names; one whose attempt's outcome is not known yet adopts the
        SID (it is sent: the resolver will not send it again)."""
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        error_code = _int_or_none(form.get("ErrorCode"))
        delivery_id = await self._deliveries.delivery_id_for_sid(sid) if sid else None
        if delivery_id is None and named and sid and await self._deliveries.adopt_sid(named, sid):
            delivery_id = named
        change = None
        if delivery_id and action_for(error_code) is ErrorAction.OPT_OUT and form.get("To"):
            change = SuppressionChange(self._number(form["To"]), "add", "twilio_21610")
        webhook = Webhook("status", sid, status, idempotency_token)
        if not await self._callbacks.apply_once(webhook, change):
            return WebhookResult("replayed", [])
        try:
            return await self._apply_status(form, sid, status, error_code, delivery_id)
        except Exception:
            await self._forget(webhook)
            raise

    async def _apply_status(
        self,
        form: Mapping[str, str],
        sid: str,
        status: str,
        error_code: int | None,
        delivery_id: str | None,
    ) -> WebhookResult:
        if delivery_id is None:
            # Not ours (or past retention): keep it for inspection, answer 200 all the same.
            await self._callbacks.keep_unmatched(form)
            return WebhookResult("unmatched", [])
        detail = f"Twilio status callback: {status}" + (
            f" (error {error_code})" if error_code else ""
        )
        applied = await self._deliveries.apply_twilio_status(
            delivery_id, status, error_code, detail
        )
        if applied != "applied":
            return WebhookResult(applied, [])
        record = await self._deliveries.get(delivery_id)
        if record is not None and record.recipient and self._pumping and error_code:
            await self._pumping.back_off(record.recipient, error_code)  # if a pumping answer
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
                "from": self._number(form.get("From", "")) or None,
                "source_event": record.event_name,
            },
            timestamp=None,
            person=Person(id=record.recipient, properties={"phone": record.recipient}),
            identity=f"{sid}:{status}",
        )
        return WebhookResult(applied, await self._ingest.ingest([event]))

    async def inbound_message(
        self, form: Mapping[str, str], idempotency_token: str | None = None
    ) -> WebhookResult:
        """Opt-out/opt-in keywords update the suppression list; every message is an event.
        Applied once per MessageSid: a replayed STOP (say, after a START) changes nothing."""
        sender = self._number(form.get("From", ""))
        keyword = (form.get("Body") or "").strip().upper()
        opt_out_type = (form.get("OptOutType") or "").upper()
        outcome = "received"
        change = None
        if sender and (opt_out_type == "STOP" or keyword in OPT_OUT_KEYWORDS):
            change = SuppressionChange(sender, "add", "inbound", keyword or opt_out_type)
            outcome = "opted_out"
        elif sender and (opt_out_type == "START" or keyword in OPT_IN_KEYWORDS):
            change = SuppressionChange(sender, "remove")
            outcome = "opted_in"
        sid = form.get("MessageSid") or form.get("SmsSid")
        webhook = Webhook("inbound", sid or "", "received", idempotency_token)
        if not await self._callbacks.apply_once(webhook, change):
            log.info("inbound message %s replayed: ignored", sid)
            return WebhookResult("replayed", [])
        if change is not None:
            log.info("%s %s (%s)", mask_phone(sender), outcome, keyword or opt_out_type)
        try:
            return await self._inbound_event(form, sid, sender, opt_out_type, outcome)
        except Exception:
            await self._forget(webhook)
            raise

    async def _inbound_event(
        self,
        form: Mapping[str, str],
        sid: str | None,
        sender: str,
        opt_out_type: str,
        outcome: str,
    ) -> WebhookResult:
        event = Event(
            name=SMS_INBOUND_EVENT,
            uuid=sid,
            distinct_id=sender,
            properties={
                "message_sid": sid,
                "from": sender,
                "to": self._number(form.get("To", "")) or None,
                "body": form.get("Body", ""),
                "opt_out_type": opt_out_type or None,
                "outcome": outcome,
                "num_media": _int_or_none(form.get("NumMedia")) or 0,
            },
            timestamp=None,
            person=Person(id=sender, properties={"phone": sender}),
            identity=sid or f"inbound:{sender}:{form.get('Body', '')}",
        )
        return WebhookResult(outcome, await self._ingest.ingest([event]))

    async def _forget(self, webhook: Webhook) -> None:
        """Let Twilio's retry of a webhook whose handling failed through (best effort: the
        error being raised is the one to report)."""
        with contextlib.suppress(StorageError):
            await self._callbacks.forget(webhook)

    def _number(self, raw: str) -> str:
        """`raw` in E.164; a sender that is no phone number (a short code, an alphanumeric
        sender id) as written, trimmed. A channel address (``whatsapp:+…``) is its number."""
        try:
            return normalize_phone(address_number(raw), self._default_region)
        except InvalidRecipient:
            return raw.strip()


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None
