"""Test mode's provider: every send succeeds at once and nothing leaves the process.

A destination in test mode (or the whole service, without credentials or with
SMS_TEST_MODE) sends through this instead of the live provider: the delivery is recorded
`mocked` with the request it stood for, which is not stored but rebuilt from the record
when it is read (the live provider's `preview`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from app.sms.failures import Unsupported
from app.sms.message import OutboundMessage
from app.sms.provider import Provider, SendResult
from app.sms.reports import InboundMessage, MessagePage, MessageQuery, ProviderMessage, StatusUpdate

_NOTHING_SENT = "test mode sends nothing: there is no message at a provider"


class MockedProvider:
    """Sends nothing; answers like the provider it stands for would have (an id of its
    shape, status "mocked"). Everything that would ask a provider raises `Unsupported`."""

    delivers = False
    send_timeout_s = 0.0
    list_delay_s = 0.0

    def __init__(
        self,
        stands_for: Provider,
        id_prefix: str = "SM",
        id_for: Callable[[str], str] | None = None,
    ) -> None:
        self._live = stands_for
        self._id_prefix = id_prefix
        # The id a message's `callback_ref` (its delivery) stands for: the store derives a
        # mocked send's id from its delivery instead of storing it (None: a random id).
        self._id_for = id_for
        self.name = f"{stands_for.name} (test mode)"
        self.schedule_window = stands_for.schedule_window

    def preview(self, message: OutboundMessage) -> dict[str, object]:
        return self._live.preview(message)

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._id_for is not None and message.callback_ref:
            return SendResult(id=self._id_for(message.callback_ref), status="mocked")
        return SendResult(id=self._id_prefix + uuid.uuid4().hex, status="mocked")

    async def fetch(self, message_id: str) -> ProviderMessage:
        raise Unsupported(_NOTHING_SENT)

    async def list(self, query: MessageQuery) -> MessagePage:
        raise Unsupported(_NOTHING_SENT)

    async def cancel(self, message_id: str) -> ProviderMessage:
        raise Unsupported(_NOTHING_SENT)

    async def redact(self, message_id: str) -> ProviderMessage:
        raise Unsupported(_NOTHING_SENT)

    async def delete(self, message_id: str) -> None:
        raise Unsupported(_NOTHING_SENT)

    def parse_status(self, fields: Mapping[str, str]) -> StatusUpdate:
        raise Unsupported("test mode's messages get no status callbacks")

    def parse_inbound(self, fields: Mapping[str, str]) -> InboundMessage:
        raise Unsupported("test mode receives no messages")
