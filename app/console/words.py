"""What the console says about statuses and reasons, in words (data, in one place)."""

from __future__ import annotations

from app.store.records import DeliveryStatus
from app.twilio.error_catalog import describe as twilio_error_words

__all__ = [
    "REASON_WORDS",
    "STATUS_WORDS",
    "TWILIO_STATUS_WORDS",
    "twilio_error_link",
    "twilio_error_words",
]

STATUS_WORDS: dict[DeliveryStatus, str] = {
    "queued": "admitted and waiting for a worker",
    "scheduled": "held until its send time",
    "sending": "a worker is sending it to Twilio",
    "unknown": "an attempt's answer was lost; Twilio is asked before any new attempt",
    "retrying": "Twilio or the network failed; another attempt is due",
    "sent": "Twilio accepted it",
    "mocked": "test mode: recorded, not sent",
    "failed": "not sent, or Twilio could not send it",
    "skipped": "never sent (see the reason)",
    "delivered": "the carrier confirmed delivery to the phone",
    "undelivered": "the carrier could not deliver it",
    "read": "the recipient read it (WhatsApp / RCS)",
    "canceled": "canceled before it was sent",
    "external": "sent by another system on the account",
    "expired": "still unsent when its validity ran out: never sent late",
    "held": "its destination is paused: held, not sent, until it resumes",
}

REASON_WORDS: dict[str, str] = {
    "throttled": "the recipient's throttle window was taken",
    "opted_out": "the recipient is on the suppression list",
    "invalid_recipient": "the recipient is not a valid phone number",
    "render_error": "the template could not be rendered",
    "body_too_long": "the body is over 1,600 characters (1,024 on WhatsApp)",
    "blocked_country": "the number is outside the destination's countries",
    "quiet_hours": "inside the recipient's quiet hours (dropped)",
    "blocked_velocity": "the pumping guard: too many new numbers, or Twilio flagged the number",
    "capped": "over a frequency cap of the recipient's",
    "destination_paused": "the destination is paused",
    "over_budget": "the destination's daily budget is spent (it paused until the day ends)",
}

# Twilio's message statuses as its status callbacks report them.
TWILIO_STATUS_WORDS: dict[str, str] = {
    "accepted": "Twilio accepted it for a Messaging Service",
    "scheduled": "Twilio holds it until its send time",
    "queued": "queued at Twilio",
    "sending": "Twilio is sending it to the carrier",
    "sent": "the carrier accepted it",
    "delivered": "the carrier confirmed delivery",
    "undelivered": "the carrier could not deliver it",
    "failed": "Twilio could not send it",
    "canceled": "canceled at Twilio",
    "read": "read by the recipient",
    "received": "an inbound message",
}


def twilio_error_link(code: int | None) -> str | None:
    """Twilio's page explaining an error code."""
    return f"https://www.twilio.com/docs/errors/{code}" if code else None
