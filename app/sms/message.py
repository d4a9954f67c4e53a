"""The message a delivery stands for, in no provider's words, and the limits it obeys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Channel = Literal["sms", "whatsapp"]  # sms: SMS, or MMS when it carries media

# A message's validity period, in seconds: Twilio's accepted range (1 s to 10 h), which is
# the service's own (the API and the destinations file refuse anything outside it).
VALIDITY_PERIOD_RANGE = range(1, 36_001)
VALIDITY_PERIOD_MAX = VALIDITY_PERIOD_RANGE[-1]
# WhatsApp caps a message body (and a Content template's text) at 1,024 characters.
MAX_BODY_CHARS: dict[Channel, int] = {"sms": 1600, "whatsapp": 1024}
MAX_MEDIA = 10  # media URLs per message


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One SMS/MMS/WhatsApp message to create. Exactly one of `from_number` /
    `messaging_service_sid` (a provider's pool of senders) is set.

    `body` may be empty only when `media_urls` or `content_sid` is not (a media-only MMS,
    a Content template). `status_callback` overrides the provider-wide callback URL for
    this message (`callback_ref` extends it). `send_at` (tz-aware) has the provider hold
    the message until then; only a sender pool can be scheduled, which the caller checks.
    """

    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    send_at: datetime | None = None
    # Appended to the provider-wide status callback URL's path (our delivery id): a
    # callback then names its delivery even before the message's id is recorded.
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
