"""What we send to Twilio and what it answers, as typed models."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One SMS to create. Exactly one of `from_number` / `messaging_service_sid` is set."""

    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True, slots=True)
class TwilioRequest:
    """An HTTP request to Twilio as it goes on the wire, minus the password."""

    method: str
    url: str
    form: dict[str, str]
    auth_username: str

    def redacted(self) -> dict[str, object]:
        """JSON-ready view for traces and the delivery log: the secret never appears."""
        return {
            "method": self.method,
            "url": self.url,
            "form": dict(self.form),
            "auth": {"username": self.auth_username, "password": "[redacted]"},
        }


class TwilioMessage(BaseModel):
    """Twilio's Message resource (the fields we use; the rest is ignored)."""

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


# How far along a message is, by Twilio's status: reports only ever move a delivery forward,
# so a late "sent" never overwrites "delivered". Equal ranks are final alternatives.
MESSAGE_STATUS_RANK: dict[str, int] = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
