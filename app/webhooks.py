"""What Twilio tells us: delivery status callbacks and inbound messages (opt-outs).

Both also become events (`$sms_status`, `$sms_inbound`) that destinations can match like
any analytics event — e.g. text the on-call number when a delivery fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.ingest import EventOutcome, IngestService
from app.pipeline.events import Event, Person
from app.pipeline.recipients import InvalidRecipient, mask_phone, normalize_phone
from app.store import keys
from app.store.deliveries import DeliveryLog, Status, now_iso
from app.store.suppressions import SuppressionList
from app.twilio.errors import OPTED_OUT_ERROR_CODE
from app.twilio.models import MESSAGE_STATUS_RANK

log = logging.getLogger(__name__)

# Twilio's default opt-out and opt-in keywords (whole body, case-insensitive, trimmed).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})

SMS_STATUS_EVENT = "$sms_status"
SMS_INBOUND_EVENT = "$sms_inbound"

# Our delivery status for each Twilio status worth showing; the rest only update
# `twilio_status` (a delivery that Twilio has "queued" is, for us, still "sent").
_DELIVERY_STATUS: dict[str, Status] = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "read": "read",
    "canceled": "canceled",
}
_UNMATCHED_KEPT = 10_000


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
        redis: Redis,
        deliveries: DeliveryLog,
        suppressions: SuppressionList,
        ingest: IngestService,
        default_region: str,
    ) -> None:
        self._redis = redis
        self._deliveries = deliveries
        self._suppressions = suppressions
        self._ingest = ingest
        self._default_region = default_region

    async def status_callback(self, form: Mapping[str, str]) -> WebhookResult:
        """Move the delivery forward; never backwards, duplicates harmless."""
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        error_code = _int_or_none(form.get("ErrorCode"))
        delivery_id = await self._deliveries.delivery_id_for_sid(sid) if sid else None
        if delivery_id is None:
            # Not ours (or past retention): keep it for inspection, answer 200 all the same.
            fields: dict[Any, Any] = {**form, "received_at": now_iso()}
            await self._redis.xadd(
                keys.UNMATCHED_CALLBACKS, fields, maxlen=_UNMATCHED_KEPT, approximate=True
            )
            return WebhookResult("unmatched", [])
        if error_code == OPTED_OUT_ERROR_CODE and form.get("To"):
            await self._suppressions.add(self._number(form["To"]), "twilio_21610")
        detail = f"Twilio status callback: {status}" + (
            f" (error {error_code})" if error_code else ""
        )
        applied = await self._deliveries.apply_twilio_status(
            delivery_id,
            status,
            MESSAGE_STATUS_RANK.get(status, 0),
            _DELIVERY_STATUS.get(status),
            error_code,
            detail,
        )
        if applied != "applied":
            return WebhookResult(applied, [])
        record = await self._deliveries.get(delivery_id)
        # A destination fed by $sms_status must not feed itself: its own sends' callbacks
        # would trigger it again, forever.
        if record is None or (record.get("event_name") or "").startswith("$sms_"):
            return WebhookResult(applied, [])
        event = Event(
            name=SMS_STATUS_EVENT,
            uuid=f"{sid}:{status}",
            distinct_id=record.get("recipient"),
            properties={
                "message_sid": sid,
                "status": status,
                "error_code": error_code,
                "delivery_id": delivery_id,
                "destination": record.get("destination"),
                "to": record.get("recipient"),
                "from": self._number(form.get("From", "")) or None,
                "source_event": record.get("event_name"),
            },
            timestamp=None,
            person=Person(
                id=record.get("recipient"), properties={"phone": record.get("recipient")}
            ),
            identity=f"{sid}:{status}",
        )
        return WebhookResult(applied, await self._ingest.ingest([event]))

    async def inbound_message(self, form: Mapping[str, str]) -> WebhookResult:
        """Opt-out/opt-in keywords update the suppression list; every message is an event."""
        sender = self._number(form.get("From", ""))
        keyword = (form.get("Body") or "").strip().upper()
        opt_out_type = (form.get("OptOutType") or "").upper()
        outcome = "received"
        if sender and (opt_out_type == "STOP" or keyword in OPT_OUT_KEYWORDS):
            await self._suppressions.add(sender, "inbound", keyword or opt_out_type)
            outcome = "opted_out"
            log.info("%s opted out (%s)", mask_phone(sender), keyword or opt_out_type)
        elif sender and (opt_out_type == "START" or keyword in OPT_IN_KEYWORDS):
            await self._suppressions.remove(sender)
            outcome = "opted_in"
            log.info("%s opted back in (%s)", mask_phone(sender), keyword or opt_out_type)
        sid = form.get("MessageSid") or form.get("SmsSid")
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

    def _number(self, raw: str) -> str:
        """`raw` in E.164; a sender that is no phone number (a short code, an alphanumeric
        sender id) as written, trimmed."""
        try:
            return normalize_phone(raw, self._default_region)
        except InvalidRecipient:
            return raw.strip()


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None
