"""Twilio's Messaging error codes as data: what each means, and what to do about it.

One table, read by whoever must react to a code: the send path (retry or not), the status
callback (an opt-out), the delivery log (the meaning in words). Titles follow Twilio's error
dictionary (https://www.twilio.com/docs/api/errors/<code>); meanings are ours, short.

Create-time codes come back on the API call (HTTP 4xx/5xx: nothing was created, so a retry
is safe); delivery codes (30xxx, 63xxx) come later, in status callbacks and on the fetched
message. A code missing here is judged by its HTTP status (`action_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = ["CATALOG", "ErrorAction", "TwilioErrorCode", "action_for", "describe"]


class ErrorAction(StrEnum):
    """What a Twilio error code asks of the sender."""

    RETRY = "retry"  # a passing condition: retry with backoff
    RETRY_SLOWER = "retry_slower"  # too fast for the sender or account: retry, and slow down
    SUPPRESS_RECIPIENT = "suppress_recipient"  # the number cannot take texts: stop sending to it
    OPT_OUT = "opt_out"  # the recipient opted out: record it, never text them again
    PAUSE_DESTINATION = "pause_destination"  # the sender or account is unfit: nothing will pass
    FAIL = "fail"  # this message cannot go as it is; others may
    # SMS Pumping Protection flagged the number: fail it; back the number and its block off
    BACK_OFF_NUMBER = "back_off_number"

    @property
    def retries(self) -> bool:
        """True when sending the same message again later may succeed."""
        return self in (ErrorAction.RETRY, ErrorAction.RETRY_SLOWER)


@dataclass(frozen=True, slots=True)
class TwilioErrorCode:
    code: int
    title: str  # Twilio's name for it
    meaning: str  # what happened, in words, for the delivery log
    action: ErrorAction


_R, _S = ErrorAction.RETRY, ErrorAction.RETRY_SLOWER
_X, _O = ErrorAction.SUPPRESS_RECIPIENT, ErrorAction.OPT_OUT
_P, _F = ErrorAction.PAUSE_DESTINATION, ErrorAction.FAIL
_B = ErrorAction.BACK_OFF_NUMBER

# (code, Twilio's title, meaning, action)
_ENTRIES: tuple[tuple[int, str, str, ErrorAction], ...] = (
    # --- account and API (create time) --------------------------------------------------
    (10001, "Account is not active", "the Twilio account is not active", _P),
    (20001, "Bad request", "Twilio refused a parameter of the request", _F),
    (20003, "Authentication error", "the Twilio credentials were refused", _P),
    (20005, "Account not active", "the Twilio account is suspended or closed", _P),
    (20009, "Cannot delete this resource before it is complete", "too early to delete", _F),
    (20404, "Resource not found", "Twilio has no such resource on this account", _F),
    (20429, "Too many requests", "over the account's concurrent request limit", _S),
    (20500, "Internal server error", "Twilio failed while handling the request", _R),
    (20503, "Service unavailable", "Twilio is temporarily unavailable", _R),
    (21211, "Invalid 'To' phone number", "the recipient is not a valid phone number", _X),
    (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
        "number",
        "the account may not text the recipient's country (Geo Permissions)",
        _P,
    ),
    (21602, "Message body is required", "the message had no body and no media", _F),
    (21603, "'From' phone number is required", "no sender was given", _F),
    (21604, "'To' phone number is required", "no recipient was given", _F),
    (
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number "
        "for this destination",
        "the sender cannot text this destination",
        _P,
    ),
    (
        21608,
        "The number is unverified; trial accounts can only send to verified numbers",
        "a trial account may only text numbers verified on it",
        _F,
    ),
    (21609, "Invalid StatusCallback", "the status callback URL was refused", _F),
    (21610, "Attempt to send to unsubscribed recipient", "the recipient texted STOP", _O),
    (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
        "over 10 hours of messages are queued on this sender",
        _S,
    ),
    (
        21612,
        "The 'To' phone number is not currently reachable via SMS",
        "Twilio cannot route a text from this sender to this recipient",
        _X,
    ),
    (21614, "'To' number is not a valid mobile number", "the recipient cannot take texts", _X),
    (
        21617,
        "The concatenated message body exceeds the 1600 character limit",
        "the body is over 1,600 characters",
        _F,
    ),
    (21619, "A text message body or media URL must be specified", "nothing to send", _F),
    (21620, "Invalid media URL(s)", "a media URL was refused", _F),
    (21621, "The 'From' number has not been enabled for MMS", "the sender cannot send MMS", _P),
    (21623, "Number of media files exceeds allowed limit", "over 10 media files", _F),
    (21635, "'To' number cannot be a landline", "the recipient is a landline", _X),
    (
        21659,
        "Source number is not a Twilio phone number or valid alphanumeric sender ID",
        "the sender is not one of this account's",
        _P,
    ),
    (
        21660,
        "Mismatch between the 'From' number and the account",
        "the sender belongs to another account",
        _P,
    ),
    (21701, "The Messaging Service does not exist", "the Messaging Service is unknown", _P),
    (
        21703,
        "The Messaging Service does not have a phone number available to send a message",
        "no sender in the Messaging Service can text this recipient",
        _P,
    ),
    (21704, "The Messaging Service contains no phone numbers", "the service has no sender", _P),
    (21705, "The Messaging Service is invalid", "the Messaging Service is unusable", _P),
    (21730, "System under maintenance", "Twilio is in scheduled maintenance", _R),
    (14107, "SMS send rate limit exceeded", "over 30 replies in 30 s between two numbers", _S),
    # --- delivery (status callbacks, the fetched message) --------------------------------
    (30001, "Queue overflow", "the sender's queue overflowed: too much sent too fast", _S),
    (30002, "Account suspended", "the account was suspended before Twilio sent it", _P),
    (
        30003,
        "Unreachable destination handset",
        "the phone was off or out of coverage (often passing)",
        _R,
    ),
    (30004, "Message blocked", "the recipient or their carrier blocks these texts", _X),
    (30005, "Unknown destination handset", "the number is unknown or no longer in service", _X),
    (30006, "Landline or unreachable carrier", "the number cannot take texts (a landline)", _X),
    (30007, "Message filtered", "Twilio or the carrier filtered it as spam or abuse", _F),
    (30008, "Unknown error", "the carrier failed for a reason it did not give", _R),
    (30009, "Missing segment", "a part of a multi-part text went missing", _R),
    (30010, "Message price exceeds max price", "dearer than its MaxPrice", _F),
    (
        30011,
        "MMS not supported by the receiving phone number in this region",
        "the recipient cannot take MMS",
        _F,
    ),
    (30017, "Carrier network congestion", "the carrier's network was congested", _R),
    (
        30018,
        "Destination carrier requires sender ID pre-registration",
        "the sender is not registered with the recipient's carrier",
        _P,
    ),
    (30019, "Content size exceeds carrier limit", "too large for the carrier", _F),
    (
        30022,
        "US A2P 10DLC - Rate limits exceeded",
        "faster than the 10DLC campaign allows (or too many to one number)",
        _S,
    ),
    (30023, "US A2P 10DLC - Daily message cap reached", "the brand's daily cap is spent", _S),
    (
        30024,
        "Numeric sender ID not provisioned on carrier",
        "the numeric sender ID is not provisioned with the carrier",
        _P,
    ),
    (
        30027,
        "US A2P 10DLC - T-Mobile daily message limit reached",
        "the brand's T-Mobile daily limit is spent",
        _S,
    ),
    (
        30032,
        "Toll-free number has not been verified",
        "the toll-free sender is not verified: carriers block it",
        _P,
    ),
    (
        30034,
        "US A2P 10DLC - Message from an unregistered number",
        "the sender is not registered to an A2P 10DLC campaign",
        _P,
    ),
    (
        30035,
        "US A2P 10DLC - Message from a number still being configured",
        "the sender's 10DLC registration is not finished",
        _P,
    ),
    (
        30036,
        "Validity period expired",
        "it waited in Twilio's queue past its validity period",
        _S,
    ),
    (30037, "Outbound messaging disabled", "outbound messaging is off for this sender", _P),
    (30038, "OTP message body filtered", "a one-time passcode was filtered", _F),
    (
        30047,
        "Failed to schedule message for a compliant time window",
        "Compliance Toolkit could not reschedule it into allowed hours",
        _R,
    ),
    (30409, "This message cannot be canceled", "too late to cancel: no longer scheduled", _F),
    (
        30450,
        "Message delivery blocked",
        "SMS Pumping Protection blocked this number for 15-30 minutes",
        _B,
    ),
    (
        30453,
        "Message couldn't be delivered",
        "SMS Pumping Protection blocked this number for a few hours",
        _B,
    ),
    (30500, "Twilio internal error", "Twilio failed while processing it", _R),
    (
        30610,
        "Message couldn't be delivered",
        "not allowed at this hour where the recipient is (e.g. TCPA 8 a.m.-9 p.m.)",
        _R,
    ),
    (35111, "SendAt timestamp is missing", "a scheduled message had no SendAt", _F),
    (35115, "Scheduling does not support this timestamp", "SendAt out of 15 min-35 days", _F),
    (
        35118,
        "MessagingServiceSid is required to schedule a message",
        "scheduling needs a Messaging Service",
        _F,
    ),
    (
        63014,
        "Channel message blocked by user action",
        "the recipient blocked the sender or withdrew consent",
        _X,
    ),
    (
        63016,
        "Outside messaging window",
        "free-form message outside the channel's 24 h window (WhatsApp: use a template)",
        _F,
    ),
    (
        63017,
        "Rate limit exceeded",
        "the account sent over 2,000 messages per second",
        _S,
    ),
    (63018, "Rate limit exceeded for channel", "over the channel's rate for this sender", _S),
    (
        63038,
        "Account exceeded the daily messages limit",
        "the account's rolling 24 h message limit is spent",
        _S,
    ),
)

CATALOG: MappingProxyType[int, TwilioErrorCode] = MappingProxyType(
    {
        code: TwilioErrorCode(code, title, meaning, action)
        for code, title, meaning, action in _ENTRIES
    }
)


def action_for(code: int | None, http_status: int | None = None) -> ErrorAction:
    """The catalog's action for `code`; a code it lacks is judged by the HTTP status of
    the answer that carried it: 429 slow down and retry, 5xx retry, anything else fail."""
    known = CATALOG.get(code) if code is not None else None
    if known is not None:
        return known.action
    if http_status == 429:
        return ErrorAction.RETRY_SLOWER
    if http_status is not None and http_status >= 500:
        return ErrorAction.RETRY
    return ErrorAction.FAIL


def describe(code: int | str | None) -> str | None:
    """`<title>: <meaning>` for a code (as stored: digits, maybe empty), None when unknown."""
    if isinstance(code, str):
        code = int(code) if code.isdigit() else None
    known = CATALOG.get(code) if code is not None else None
    return f"{known.title}: {known.meaning}" if known else None
