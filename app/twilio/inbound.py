"""What Twilio posts to us — status callbacks and inbound messages — in the provider
seam's vocabulary (`app/sms/reports.py`). The mappings are data; the signature is checked
before any of this (`signature.py`, by the router)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from app.sms.reports import Consent, Direction, InboundMessage, ProviderStatus, StatusUpdate
from app.twilio.error_catalog import action_for
from app.twilio.models import address_number

# Twilio's message statuses onto the neutral lifecycle (the same words: Twilio's are the
# usual ones). Not here, kept in Twilio's words and ranked nowhere: "receiving",
# "received" (inbound) and "partially_delivered".
STATUSES: dict[str, ProviderStatus] = {
    "accepted": "accepted",
    "scheduled": "scheduled",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "canceled",
    "read": "read",
}

# Twilio's `direction`: only "outbound-api" is what this service (or another API client)
# creates; any other "outbound-…" is a reply or a flow.
DIRECTIONS: dict[str, Direction] = {
    "outbound-api": "api",
    "outbound-call": "outbound",
    "outbound-reply": "outbound",
    "inbound": "inbound",
}

# Twilio's default opt-out and opt-in keywords (whole body, case-insensitive, trimmed).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})


def neutral_status(status: str | None) -> str | None:
    """Twilio's status in the neutral vocabulary (kept as is when it has no counterpart)."""
    if not status:
        return None
    return STATUSES.get(status, status)


def neutral_direction(direction: str | None) -> Direction | None:
    """Twilio's `direction` in the neutral vocabulary (an unknown outbound kind: "outbound")."""
    if not direction:
        return None
    if direction in DIRECTIONS:
        return DIRECTIONS[direction]
    return "outbound" if direction.startswith("outbound") else "inbound"


def epoch_ms(rfc2822: str | None) -> int | None:
    """Twilio's RFC 2822 date ("Tue, 01 Dec 2026 18:14:16 +0000") in epoch ms."""
    if not rfc2822:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(rfc2822).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def parse_status_callback(form: Mapping[str, str]) -> StatusUpdate:
    """A status callback's form (older accounts post `SmsSid` / `SmsStatus`)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    code = _int_or_none(form.get("ErrorCode"))
    return StatusUpdate(
        message_id=sid,
        status=neutral_status(status) or "",
        error_code=code,
        action=action_for(code) if code is not None else None,
        recipient=address_number(form.get("To", "")),
        sender=address_number(form.get("From", "")),
        messaging_service_sid=form.get("MessagingServiceSid", ""),
        fields=form,
    )


def parse_inbound_message(form: Mapping[str, str]) -> InboundMessage:
    """An inbound message's form, with what it says about consent: Twilio's `OptOutType`
    (Advanced Opt-Out's verdict) or its default keywords (the whole body); an opt-out wins."""
    keyword = (form.get("Body") or "").strip().upper()
    opt_out_type = (form.get("OptOutType") or "").upper()
    consent: Consent | None = None
    if opt_out_type == "STOP" or keyword in OPT_OUT_KEYWORDS:
        consent = "opt_out"
    elif opt_out_type == "START" or keyword in OPT_IN_KEYWORDS:
        consent = "opt_in"
    return InboundMessage(
        message_id=form.get("MessageSid") or form.get("SmsSid") or None,
        sender=address_number(form.get("From", "")),
        recipient=address_number(form.get("To", "")),
        body=form.get("Body", ""),
        consent=consent,
        keyword=keyword or opt_out_type,
        opt_out_type=opt_out_type or None,
        num_media=_int_or_none(form.get("NumMedia")) or 0,
        fields=form,
    )


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None
