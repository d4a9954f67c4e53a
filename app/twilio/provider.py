"""Twilio as a `Provider` (`app/sms/provider.py`): its client's calls, answered in the
seam's vocabulary. Twilio's own words (SIDs, statuses, error codes) stay in this package;
what the rest of the service needs of them is mapped as data (`inbound.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx

from app.settings import Settings
from app.sms.message import OutboundMessage
from app.sms.provider import ScheduleWindow, SendResult
from app.sms.reports import InboundMessage, MessagePage, MessageQuery, ProviderMessage, StatusUpdate
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.inbound import (
    epoch_ms,
    neutral_direction,
    neutral_status,
    parse_inbound_message,
    parse_status_callback,
)
from app.twilio.models import TwilioMessage


class TwilioProvider:
    """Sends, fetches, lists, cancels through `TwilioClient`; parses Twilio's webhooks.

    Errors are Twilio's (`TwilioApiError`, `TwilioTransportError`), which are the seam's
    `ProviderRejected` / `ProviderUnreachable`.
    """

    name = "Twilio"
    delivers = True
    # Twilio holds a scheduled message itself only within this window, and only when it is
    # sent through a Messaging Service (ScheduleType=fixed + SendAt).
    schedule_window: ScheduleWindow | None = ScheduleWindow(
        timedelta(minutes=15), timedelta(days=35)
    )

    def __init__(
        self, client: TwilioClient, send_timeout_s: float = 10.0, list_delay_s: float = 60.0
    ) -> None:
        self.client = client  # for `smsdest twilio raw`, which speaks Twilio's API itself
        self.send_timeout_s = send_timeout_s
        self.list_delay_s = list_delay_s

    def preview(self, message: OutboundMessage) -> dict[str, object]:
        return self.client.message_request(message).redacted()

    async def send(self, message: OutboundMessage) -> SendResult:
        created = await self.client.send_message(message)
        return SendResult(id=created.sid, status=neutral_status(created.status) or "queued")

    async def fetch(self, message_id: str) -> ProviderMessage:
        return neutral_message(await self.client.fetch_message(message_id))

    async def list(self, query: MessageQuery) -> MessagePage:
        page = await self.client.list_messages(
            to=query.to,
            from_=query.from_,
            date_sent=query.date_sent,
            date_sent_before=query.date_sent_before,
            date_sent_after=query.date_sent_after,
            page_size=query.page_size,
            page_uri=query.cursor,
        )
        return MessagePage([neutral_message(m) for m in page.messages], page.next_page_uri)

    async def cancel(self, message_id: str) -> ProviderMessage:
        return neutral_message(await self.client.cancel_message(message_id))

    async def redact(self, message_id: str) -> ProviderMessage:
        return neutral_message(await self.client.redact_message(message_id))

    async def delete(self, message_id: str) -> None:
        await self.client.delete_message(message_id)

    def parse_status(self, fields: Mapping[str, str]) -> StatusUpdate:
        return parse_status_callback(fields)

    def parse_inbound(self, fields: Mapping[str, str]) -> InboundMessage:
        return parse_inbound_message(fields)


def neutral_message(message: TwilioMessage) -> ProviderMessage:
    """Twilio's Message resource in the seam's words; `raw` keeps Twilio's JSON."""
    segments = message.num_segments
    return ProviderMessage(
        id=message.sid,
        status=neutral_status(message.status),
        direction=neutral_direction(message.direction),
        to=message.to,
        from_number=message.from_,
        messaging_service_sid=message.messaging_service_sid,
        body=message.body,
        segments=int(segments) if segments and segments.isdigit() else None,
        error_code=message.error_code,
        error_message=message.error_message,
        created_ms=epoch_ms(message.date_created),
        sent_ms=epoch_ms(message.date_sent),
        raw=message.model_dump(mode="json", by_alias=True),
    )


def build_twilio_provider(settings: Settings, http: httpx.AsyncClient) -> TwilioProvider:
    """The one Twilio provider of a process (API and worker share it)."""
    credentials = TwilioCredentials.from_values(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_api_key,
        settings.twilio_api_secret,
    )
    callback = f"{settings.public_base_url}/v1/twilio/status" if settings.public_base_url else None
    client = TwilioClient(http, credentials, settings.twilio_base_url, callback)
    return TwilioProvider(client, settings.twilio_timeout, settings.twilio_list_delay)
