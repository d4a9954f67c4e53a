"""The resolver: what became of a send attempt whose outcome is unknown, asked of Twilio.

Twilio has no idempotency key for creating a message. An attempt whose answer never got
recorded (its worker died, the request timed out or the connection dropped after it left,
the entry was taken over by another worker) is looked up in the account's message list:
to the recipient (and from the sender number, when there is one), created no earlier than
the attempt's start less a clock margin, from the same sender, with the same body. Found:
its SID is adopted and nothing is sent. Not found: the attempt created nothing, and it is
sent again — but only once the list can be trusted to show it (the worker waits
SMS_TWILIO_LIST_DELAY past the moment the attempt could last have reached Twilio).

Not `DateSent` filters: a message Twilio created but has not sent yet has no DateSent, and
would not be listed. The list is read newest first and stops at messages created before
the attempt (less the margin), at most `_MAX_PAGES` pages.
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable

from app.twilio.client import TwilioClient
from app.twilio.models import OutboundMessage, TwilioMessage

# Twilio stamps `date_created` to the second, by its clock: a message created by the
# attempt may look this much older than the attempt's start by ours.
CLOCK_MARGIN_MS = 60_000
_MAX_PAGES = 5
_PAGE_SIZE = 100


async def find_created(
    twilio: TwilioClient,
    message: OutboundMessage,
    since_ms: int,
    taken: Callable[[str], Awaitable[bool]],
) -> TwilioMessage | None:
    """The message Twilio created for `message` at or after `since_ms` (epoch ms), or None.

    `taken(sid)` says whether a SID already belongs to another delivery (the same text to
    the same recipient twice is two deliveries, and one message cannot settle both).
    Raises `TwilioError` when Twilio cannot be asked (the outcome stays unknown).
    """
    oldest_ms = since_ms - CLOCK_MARGIN_MS
    page = await twilio.list_messages(
        to=message.to,
        from_=None if message.messaging_service_sid else message.from_number,
        page_size=_PAGE_SIZE,
    )
    for _ in range(_MAX_PAGES):
        for listed in page.messages:
            created_ms = _epoch_ms(listed.date_created)
            if created_ms is not None and created_ms < oldest_ms:
                return None  # newest first: everything further is older still
            if _same(listed, message) and not await taken(listed.sid):
                return listed
        if page.next_page_uri is None:
            return None
        page = await twilio.list_messages(page_uri=page.next_page_uri)
    return None


def _same(listed: TwilioMessage, message: OutboundMessage) -> bool:
    """The same text from the same sender (the list was asked for the recipient)."""
    if listed.direction not in (None, "outbound-api"):
        return False
    if (listed.body or "") != message.body:
        return False
    if message.messaging_service_sid:
        return listed.messaging_service_sid == message.messaging_service_sid
    return listed.from_ == message.from_number


def _epoch_ms(rfc2822: str | None) -> int | None:
    """Twilio's RFC 2822 date ("Tue, 01 Dec 2026 18:14:16 +0000") in epoch ms."""
    if not rfc2822:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(rfc2822).timestamp() * 1000)
    except (TypeError, ValueError):
        return None
