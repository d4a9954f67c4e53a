"""What we send to Twilio and what it answers, as typed models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Twilio's accepted range for ValidityPeriod, in seconds (the API's default is the maximum).
VALIDITY_PERIOD_RANGE = range(1, 36_001)

_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")

Channel = Literal["sms", "whatsapp"]  # sms: SMS, or MMS when it carries media
# How each channel writes an address in Twilio's To/From.
CHANNEL_PREFIXES: dict[Channel, str] = {"sms": "", "whatsapp": "whatsapp:"}
# WhatsApp caps a message body (and a Content template's text) at 1,024 characters.
MAX_BODY_CHARS: dict[Channel, int] = {"sms": 1600, "whatsapp": 1024}
MAX_MEDIA = 10  # Twilio's limit of MediaUrl per message


def address_number(address: str) -> str:
    """The phone number in a Twilio address: ``whatsapp:+14155552671`` → ``+14155552671``
    (a STOP sent on WhatsApp opts the number out, as one sent by SMS does)."""
    text = address.strip()
    for prefix in CHANNEL_PREFIXES.values():
        if prefix and text.startswith(prefix):
            return text.removeprefix(prefix)
    return text


def _check_service_sid(value: str) -> str:
    if not _MESSAGING_SERVICE_SID.fullmatch(value):  # match's `$` allows a trailing newline
        raise ValueError("must be 'MG' followed by 32 hex digits")
    return value


MessagingServiceSid = Annotated[str, AfterValidator(_check_service_sid)]
"""A pydantic field type: a Messaging Service SID (``MG`` + 32 hex digits)."""


def _check_content_sid(value: str) -> str:
    if not _CONTENT_SID.fullmatch(value):
        raise ValueError("must be 'HX' followed by 32 hex digits (a Content template SID)")
    return value


ContentSid = Annotated[str, AfterValidator(_check_content_sid)]
"""A pydantic field type: a Content template SID (``HX`` + 32 hex digits)."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One SMS/MMS to create. Exactly one of `from_number` / `messaging_service_sid` is set.

    `body` may be empty only when `media_urls` or `content_sid` is not (a media-only MMS,
    a Content template). `channel` "whatsapp" addresses both ends as ``whatsapp:+…``.
    `status_callback` overrides the client-wide callback URL for this message
    (`callback_ref` extends it). `send_at` (tz-aware) schedules the message; Twilio only
    schedules through a Messaging Service, which the caller checks.
    """

    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    send_at: datetime | None = None
    # Appended to the client-wide status callback URL's path (our delivery id): a callback
    # then names its delivery even before the message's SID is recorded.
    callback_ref: str | None = None
    channel: Channel = "sms"
    content_sid: str | None = None  # a Content template instead of a body (WhatsApp)
    content_variables: str | None = None  # its variables, a JSON object of strings

    def __post_init__(self) -> None:
        # A list would make the frozen message unhashable and mutable behind our back.
        object.__setattr__(self, "media_urls", tuple(self.media_urls))
        if self.send_at is not None and self.send_at.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware (UTC)")
        if self.validity_period is not None and self.validity_period not in VALIDITY_PERIOD_RANGE:
            raise ValueError("validity_period must be between 1 and 36000 seconds")


@dataclass(frozen=True, slots=True)
class TwilioRequest:
    """An HTTP request to Twilio as it goes on the wire, minus the password.

    `form` is the list of form fields in wire order: a key repeats when Twilio takes several
    values (one `MediaUrl` field per media URL).
    """

    method: str
    url: str
    form: list[tuple[str, str]]
    auth_username: str

    def form_dict(self) -> dict[str, str | list[str]]:
        """The form as a dict: a single value as is, a repeated key's values as a list."""
        view: dict[str, str | list[str]] = {}
        for key, value in self.form:
            if key not in view:
                view[key] = value
            else:
                previous = view[key]
                view[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        return view

    def redacted(self) -> dict[str, object]:
        """JSON-ready view for traces and the delivery log: the secret never appears."""
        return {
            "method": self.method,
            "url": self.url,
            "form": self.form_dict(),
            "auth": {"username": self.auth_username, "password": "[redacted]"},
        }


class TwilioMessage(BaseModel):
    """Twilio's Message resource (the fields we use; the rest is ignored).

    Dates stay Twilio's RFC 2822 strings ("Fri, 24 May 2019 17:18:27 +0000"); `price` is a
    decimal string (negative for a charge) and `num_media` / `num_segments` are strings too,
    exactly as the API answers them.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    sid: str
    status: str | None = None
    to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    body: str | None = None
    messaging_service_sid: str | None = None
    num_segments: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    date_created: str | None = None
    account_sid: str | None = None
    direction: str | None = None
    num_media: str | None = None
    price: str | None = None
    price_unit: str | None = None
    date_sent: str | None = None
    date_updated: str | None = None
    uri: str | None = None


class MessagePage(BaseModel):
    """One page of Twilio's message list; pass `next_page_uri` back to get the next one."""

    model_config = ConfigDict(extra="ignore")

    messages: list[TwilioMessage]
    next_page_uri: str | None = None
