"""The `Provider` protocol: what the service needs from whoever carries its texts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from app.sms.message import OutboundMessage
from app.sms.reports import InboundMessage, MessagePage, MessageQuery, ProviderMessage, StatusUpdate


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message the provider accepted: its id there, and its status (a `ProviderStatus`)."""

    id: str
    status: str


@dataclass(frozen=True, slots=True)
class ScheduleWindow:
    """How far ahead of its send time a provider holds a message itself (only one sent
    through a sender pool): more than `earliest`, at most `latest`."""

    earliest: timedelta
    latest: timedelta


class Provider(Protocol):
    """One way of sending texts: Twilio (`app/twilio/provider.py`), or test mode's
    (`app/sms/mocked.py`), which sends nothing.

    Every call that talks to the provider raises `ProviderRejected` (it answered an error)
    or `ProviderUnreachable` (no usable answer); a call it cannot serve raises
    `Unsupported`. Webhook signatures are checked by the provider's own router before
    `parse_status` / `parse_inbound` are called (they are the provider's HTTP, not ours).
    """

    name: str  # how errors and logs name it ("Twilio")
    # False: nothing leaves the process (test mode), so an attempt never needs resolving.
    delivers: bool
    # How long one request may take at most, and how long after a create the provider's
    # list can be trusted to show the message (the resolver waits both out).
    send_timeout_s: float
    list_delay_s: float
    # Send times it holds a message for itself (None: none; we hold every one).
    schedule_window: ScheduleWindow | None

    def preview(self, message: OutboundMessage) -> dict[str, object]:
        """The request `send` would make, secrets redacted (the tester's trace, and what a
        mocked send stood for)."""
        ...

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create the message."""
        ...

    async def fetch(self, message_id: str) -> ProviderMessage:
        """One message by its id (ValueError when it is not one of this provider's ids)."""
        ...

    async def list(self, query: MessageQuery) -> MessagePage:
        """One page of the account's messages, newest first, by their creation: the
        resolver looks there for an attempt whose answer was lost. ValueError for a cursor
        that is not this provider's."""
        ...

    async def cancel(self, message_id: str) -> ProviderMessage:
        """Cancel a message the provider holds until its send time (`ProviderRejected`
        with `conflict` once it is past that)."""
        ...

    async def redact(self, message_id: str) -> ProviderMessage:
        """Blank the text the provider keeps of a message."""
        ...

    async def delete(self, message_id: str) -> None:
        """Delete the provider's copy of a message (`conflict` while it is not final)."""
        ...

    def parse_status(self, fields: Mapping[str, str]) -> StatusUpdate:
        """A verified status callback's fields, in the neutral vocabulary."""
        ...

    def parse_inbound(self, fields: Mapping[str, str]) -> InboundMessage:
        """A verified inbound message's fields, with what its keyword means for consent."""
        ...
