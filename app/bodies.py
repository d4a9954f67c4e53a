"""Request bodies (API and CLI): strict models whose unknown fields cost one error, and
the bodies more than one front end takes (`MessageCreate`: the API's and the CLI's).

Pydantic reports every unknown field of an `extra="forbid"` model separately: a
100,000-key object cost 89 MB and 2.7 s to validate (measured), and concurrent ones raised
the process's RSS for good (freed memory is not all given back to the system). Past a
handful, unknown fields are refused at once, in one error naming the first few.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.pipeline.recipients import E164Number
from app.pipeline.render import MAX_BODY_LENGTH, utf16_length
from app.sms.message import MAX_MEDIA, VALIDITY_PERIOD_MAX
from app.twilio.models import MessagingServiceSid

MAX_UNKNOWN_FIELDS_LISTED = 5
_URL = re.compile(r"https?://\S+")  # fullmatch: `$` would allow a trailing newline


class StrictBody(BaseModel):
    """A request body: unknown fields are errors, and many of them are one error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict) or len(data) <= len(cls.model_fields):
            return data
        public = sorted(field.alias or name for name, field in cls.model_fields.items())
        known = {*cls.model_fields, *public}
        unknown = [key for key in data if key not in known]
        if len(unknown) > MAX_UNKNOWN_FIELDS_LISTED:
            named = ", ".join(repr(str(key)[:40]) for key in unknown[:MAX_UNKNOWN_FIELDS_LISTED])
            raise ValueError(
                f"{len(unknown)} unknown fields ({named}, …); the fields are {', '.join(public)}"
            )
        return data


class MessageCreate(StrictBody):
    """`POST /v1/messages` and `smsdest messages send`: checked before anything is queued."""

    to: E164Number
    body: str | None = None
    media_url: list[str] = Field(default_factory=list, max_length=MAX_MEDIA)
    from_number: E164Number | None = Field(default=None, alias="from")
    messaging_service_sid: MessagingServiceSid | None = None
    status_callback: str | None = None
    validity_period: int | None = Field(default=None, ge=1, le=VALIDITY_PERIOD_MAX)
    send_at: datetime | None = None

    @field_validator("body")
    @classmethod
    def _body_length(cls, value: str | None) -> str | None:
        if value is not None and utf16_length(value) > MAX_BODY_LENGTH:
            raise ValueError(
                f"is {utf16_length(value)} characters (UTF-16 units); Twilio's limit is 1600"
            )
        return value

    @field_validator("media_url")
    @classmethod
    def _media(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _URL.fullmatch(url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @field_validator("status_callback")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        if value is not None and not _URL.fullmatch(value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("send_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # ISO 8601 without an offset is read as UTC, the documented unit.
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _content_and_sender(self) -> MessageCreate:
        if not self.body and not self.media_url:
            raise ValueError("a message needs a 'body' or at least one 'media_url'")
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of 'from' or 'messaging_service_sid'")
        return self
