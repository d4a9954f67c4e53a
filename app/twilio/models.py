"""What we send to Twilio and what it answers, as typed models (in Twilio's words)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.sms.message import Channel

_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")

# How each channel writes an address in Twilio's To/From.
CHANNEL_PREFIXES: dict[Channel, str] = {"sms": "", "whatsapp": "whatsapp:"}


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
