"""Stage 3: turn a rendered `to` value into an E.164 number, or say why not.

Google's libphonenumber (the `phonenumbers` port) does the parsing: national formats,
punctuation, country rules and number validity are far too intricate to hand-write.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


class InvalidRecipient(Exception):
    """The recipient cannot be parsed into a valid phone number."""


@lru_cache(maxsize=65_536)
def normalize_phone(raw: str, default_region: str) -> str:
    """Return `raw` as E.164 (``+15551234567``), using `default_region` for national numbers.

    Cached: the same recipients recur across events and parsing is the costly part.
    """
    text = raw.strip()
    if not text:
        raise InvalidRecipient("recipient is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRecipient(f"{mask_phone(text)} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidRecipient(f"{mask_phone(text)} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(number: str) -> str:
    """Mask the middle of a number for logs: ``+15551234567`` → ``+1555•••4567``."""
    if len(number) <= 8:
        return number[:2] + "•••"
    return number[:5] + "•••" + number[-4:]
