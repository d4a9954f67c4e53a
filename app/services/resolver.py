"""The resolver: what became of a send attempt whose outcome is unknown, asked of the
provider.

A provider may have no idempotency key for creating a message (Twilio has none). An
attempt whose answer never got recorded (its worker died, the request timed out or the
connection dropped after it left, the entry was taken over by another worker) is looked up
in the account's message list: to the recipient (and from the sender number, when there is
one), created no earlier than the attempt's start less a clock margin, from the same
sender, with the same body. Found: its id is adopted and nothing is sent. Not found: the
attempt created nothing, and it is sent again — but only once the list can be trusted to
show it (the worker waits the provider's `list_delay_s`, SMS_TWILIO_LIST_DELAY, past the
moment the attempt could last have reached it).

Not filtered by send date: a message created but not sent yet has none, and would not be
listed. The list is read newest first and stops at messages created before the attempt
(less the margin), at most `_MAX_PAGES` pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.sms.message import OutboundMessage
from app.sms.provider import Provider
from app.sms.reports import MessageQuery, ProviderMessage

# A provider stamps a message's creation by its own clock (Twilio: to the second): a
# message created by the attempt may look this much older than the attempt's start by ours.
CLOCK_MARGIN_MS = 60_000
_MAX_PAGES = 5
_PAGE_SIZE = 100


async def find_created(
    provider: Provider,
    message: OutboundMessage,
    since_ms: int,
    taken: Callable[[str], Awaitable[bool]],
) -> ProviderMessage | None:
    """The message the provider created for `message` at or after `since_ms` (epoch ms),
    or None.

    `taken(id)` says whether a message id already belongs to another delivery (the same
    text to the same recipient twice is two deliveries, and one message cannot settle
    both). Raises `ProviderError` when the provider cannot be asked (the outcome stays
    unknown).
    """
    oldest_ms = since_ms - CLOCK_MARGIN_MS
    page = await provider.list(
        MessageQuery(
            to=message.to,
            from_=None if message.messaging_service_sid else message.from_number,
            page_size=_PAGE_SIZE,
        )
    )
    for _ in range(_MAX_PAGES):
        for listed in page.messages:
            if listed.created_ms is not None and listed.created_ms < oldest_ms:
                return None  # newest first: everything further is older still
            if _same(listed, message) and not await taken(listed.id):
                return listed
        if page.next_cursor is None:
            return None
        page = await provider.list(MessageQuery(cursor=page.next_cursor))
    return None


def _same(listed: ProviderMessage, message: OutboundMessage) -> bool:
    """The same text from the same sender, created through the API (the list was asked
    for the recipient)."""
    if listed.direction not in (None, "api"):
        return False
    if (listed.body or "") != message.body:
        return False
    if message.messaging_service_sid:
        return listed.messaging_service_sid == message.messaging_service_sid
    return listed.from_number == message.from_number
