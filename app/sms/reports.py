"""What a provider tells us about messages, in one vocabulary for every provider (after
django-anymail's normalized events): a message's lifecycle, a status update, an inbound
message, and a message as the provider fetches or lists it. Each keeps the provider's own
fields aside (`fields`, `raw`), for the log and the pass-through API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from app.sms.failures import ErrorAction

# A message's lifecycle at a provider (Twilio's words, which are the usual ones). A
# provider maps its own statuses onto these as data; a status it cannot map is kept in its
# own words and ranks nowhere (the store's `PROVIDER_STATUSES` ranks these). "mocked": test
# mode's answer, sent nowhere.
ProviderStatus = Literal[
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "canceled",
    "read",
    "mocked",
]

# Who made a message: us through the API ("api"), someone else ("outbound": a reply, a
# flow, another system on the account), or the recipient ("inbound").
Direction = Literal["api", "outbound", "inbound"]

# An inbound message's consent keyword: the sender opts out of texts, or back in.
Consent = Literal["opt_out", "opt_in"]


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status callback: message `message_id` reached `status` (a `ProviderStatus`, or
    the provider's own word for one it cannot map)."""

    message_id: str
    status: str
    error_code: int | None = None  # the provider's code, when the message failed
    action: ErrorAction | None = None  # what its catalog says about `error_code`
    recipient: str = ""  # the number the message went to ("" when not told)
    sender: str = ""
    messaging_service_sid: str = ""  # the sender pool it went through, if any
    fields: Mapping[str, str] = field(default_factory=dict)  # as posted, for inspection


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a recipient sent us. `consent` is what its keyword means (`keyword`:
    the word that says so, or the provider's opt-out type when it decided)."""

    message_id: str | None
    sender: str
    recipient: str
    body: str
    consent: Consent | None = None
    keyword: str = ""
    opt_out_type: str | None = None  # the provider's own opt-out verdict, when it gives one
    num_media: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    """A message as the provider fetches or lists it. `raw` is the provider's own JSON for
    it (what the pass-through messages API answers)."""

    id: str
    status: str | None = None
    direction: Direction | None = None
    to: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    body: str | None = None
    segments: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    created_ms: int | None = None  # epoch ms, by the provider's clock
    sent_ms: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of the provider's messages, newest first; `next_cursor` asks for the next."""

    messages: list[ProviderMessage]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Which of the account's messages to list. Days are the provider's (UTC) days:
    `date_sent_before` / `_after` are "on or before" / "on or after". `cursor`: a previous
    page's `next_cursor` (it carries the filters and the size)."""

    to: str | None = None
    from_: str | None = None
    date_sent: date | None = None
    date_sent_before: date | None = None
    date_sent_after: date | None = None
    page_size: int = 50
    cursor: str | None = None
