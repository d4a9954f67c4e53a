"""Senders and their pace: `senders:` in the destinations file, and the rate of one that
is not declared there.

A sender (a `from` number or a Messaging Service) can hand carriers only so many message
segments per second; Twilio queues what comes faster, per sender, and fails what waits too
long (21611, 30001). So the worker paces each sender to its rate (app/services/pacing.py).
Rates are in segments per second: a 3-segment text costs three times a 1-segment one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, model_validator

SenderType = Literal["long_code", "toll_free", "short_code", "messaging_service"]

# Twilio's documented throughput of each kind of US sender, in segments per second. A
# Messaging Service pools numbers of any kind, which this service cannot see: unless told
# (`rate`, or the `type` of its numbers), it is paced as one long code, the safe guess.
DEFAULT_RATES: Mapping[SenderType, float] = {
    "long_code": 1.0,
    "toll_free": 3.0,
    "short_code": 100.0,
    "messaging_service": 1.0,
}
MAX_RATE = 10_000.0  # segments per second; more than any one sender is given

_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")


class SenderConfig(BaseModel):
    """One entry of `senders:` (keyed by the `from` number or Messaging Service SID)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Segments per second; unset: the default of `type`.
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE)
    # Unset: from the sender's shape (see `sender_type`).
    type: SenderType | None = None

    @model_validator(mode="after")
    def _something(self) -> SenderConfig:
        if self.rate is None and self.type is None:
            raise ValueError("give 'rate' (segments per second) or 'type'")
        return self


def check_sender_key(sender: str) -> str | None:
    """Why `sender` cannot name a sender (None when it can): an E.164 number, a short
    code's digits or a Messaging Service SID."""
    if _SERVICE_SID.match(sender) or _SHORT_CODE.match(sender):
        return None
    try:
        number = phonenumbers.parse(sender, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        return (
            f"{sender!r} is not a sender: write the 'from' number in E.164 (+14155552671), "
            "a short code's digits or a Messaging Service SID (MG + 32 hex)"
        )
    if phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != sender:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return f"{sender!r}: write it as destinations' 'from' are stored, {e164}"
    return None


@lru_cache(maxsize=1024)
def sender_type(sender: str) -> SenderType:
    """The kind of sender, from its shape: ``MG…`` a Messaging Service, 3-8 digits a short
    code, a number libphonenumber says is toll-free a toll-free number, else a long code."""
    if sender.startswith("MG"):
        return "messaging_service"
    if _SHORT_CODE.match(sender):
        return "short_code"
    try:
        number = phonenumbers.parse(sender, None)
    except phonenumbers.NumberParseException:
        return "long_code"
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.TOLL_FREE:
        return "toll_free"
    return "long_code"


def declared_rate(config: SenderConfig, sender: str) -> float:
    """The rate a `senders:` entry gives `sender`."""
    if config.rate is not None:
        return config.rate
    return DEFAULT_RATES[config.type or sender_type(sender)]


def undeclared_rate(sender: str, default: float | None = None) -> float:
    """The rate of a sender missing from `senders:`: `default` (SMS_SENDER_DEFAULT_RATE)
    when set, else its type's, from its shape."""
    return default if default is not None else DEFAULT_RATES[sender_type(sender)]
