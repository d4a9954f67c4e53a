"""Stage 3: turn a rendered `to` value into an E.164 number, or say why not.

Google's libphonenumber (the `phonenumbers` port) does the parsing: national formats,
punctuation, country rules and number validity are far too intricate to hand-write.
This is the one definition of a phone number for the whole service: every number that
enters (events, API, CLI, destinations, webhooks, suppressions) goes through
`normalize_phone` once, and only its ASCII E.164 answer is compared, stored and sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator


class InvalidRecipient(Exception):
    """The recipient cannot be parsed into a valid phone number."""


def normalize_phone(raw: str, default_region: str | None) -> str:
    """Return `raw` as ASCII E.164 (``+15551234567``), using `default_region` for national
    numbers (None: only international numbers, written with ``+``, are accepted).

    Any digits libphonenumber reads (full-width, Arabic-Indic, …), spacing, punctuation and
    surrounding whitespace (a trailing newline) become the plain form.
    """
    return normalize_recipient(raw, default_region)[0]


@lru_cache(maxsize=65_536)
def normalize_recipient(raw: str, default_region: str | None) -> tuple[str, str]:
    """`normalize_phone`'s number and its ISO region (``GB``; ``001`` for a non-geographic
    one, +800, +882…, as libphonenumber names them), from one parse.

    Cached: the same recipients recur across events and parsing is the costly part (only
    successes are kept, each under 250 characters: libphonenumber refuses longer input).
    One parse, not two: finding the region is part of checking validity
    (`is_valid_number` is exactly `region_code_for_number` then
    `is_valid_number_for_region`); parsing the E.164 answer again to find it cost ~40%
    of libphonenumber's share of ingest (measured in the git log).
    """
    text = raw.strip()
    if not text:
        raise InvalidRecipient("recipient is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if default_region is None and exc.error_type == exc.INVALID_COUNTRY_CODE:
            raise InvalidRecipient(
                f"{mask_phone(text)} is not in international format (+ and country code, "
                "e.g. +14155552671)"
            ) from None
        raise InvalidRecipient(f"{mask_phone(text)} is not a phone number: {exc}") from None
    region = _region_if_valid(number)
    if region is None:
        raise InvalidRecipient(f"{mask_phone(text)} is not a valid phone number")
    if number.extension:
        # E.164 has no extensions: dropping it would text a number nobody wrote.
        raise InvalidRecipient(f"{mask_phone(text)} has an extension; a text cannot reach one")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), region


def _region_if_valid(number: phonenumbers.PhoneNumber) -> str | None:
    """`region_code_for_number` when `is_valid_number`, else None, with one validity check
    where that settles both.

    For a code shared by several regions, libphonenumber finds the region by trying each
    in turn, the first (the US for +1, GB for +44…) by the same check validity makes, when
    it has no leading digits to go by. A number valid there is therefore in it: the
    second, identical check is skipped (it was a fifth of a US number's cost; measured in
    the git log). Anything else takes libphonenumber's own two steps.
    """
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code or 0, ())
    if (
        len(regions) > 1
        and _decided_by_validity(regions[0])
        and phonenumbers.is_valid_number_for_region(number, regions[0])
    ):
        return regions[0]
    region = phonenumbers.region_code_for_number(number)
    if region is None or not phonenumbers.is_valid_number_for_region(number, region):
        return None
    return region


@cache
def _decided_by_validity(region: str) -> bool:
    """Whether `region_code_for_number` tries `region` by validity (no leading digits)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    return metadata is not None and metadata.leading_digits is None


def _international(value: str) -> str:
    try:
        return normalize_phone(value, None)
    except InvalidRecipient as exc:
        raise ValueError(str(exc)) from None


E164Number = Annotated[str, AfterValidator(_international)]
"""A pydantic field type: a phone number in international format, normalized to ASCII
E.164 (``＋１ 415 555 2671`` → ``+14155552671``) by `normalize_phone`."""


@lru_cache(maxsize=65_536)
def country_of(number: str) -> str:
    """The ISO region of an E.164 number (``+447700900123`` → ``GB``); ``001`` for a
    non-geographic one (+800, +882…), as libphonenumber names them. Ingest has it from
    `normalize_recipient` (`Evaluation.country`) without parsing again."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or "001"


@lru_cache(maxsize=65_536)
def time_zones_of(number: str) -> tuple[str, ...]:
    """The IANA zones libphonenumber places an E.164 number in (by its prefix); empty when
    it does not know."""
    # Imported with the first quiet-hours check: its prefix table costs a process ~1 MB
    # that a service without quiet hours never needs.
    import phonenumbers.timezone

    zones = phonenumbers.timezone.time_zones_for_number(phonenumbers.parse(number))
    return tuple(zone for zone in zones if zone != "Etc/Unknown")


ALL_COUNTRIES = "*"


def parse_countries(values: Iterable[str]) -> frozenset[str]:
    """ISO region codes as an allow list (``*``: every country), upper-cased; ValueError
    naming any code libphonenumber does not know."""
    codes = frozenset(value.strip().upper() for value in values if value.strip())
    if not codes:
        raise ValueError("list at least one country code (or * for every country)")
    known = phonenumbers.SUPPORTED_REGIONS | {"001", ALL_COUNTRIES}
    unknown = sorted(codes - known)
    if unknown:
        raise ValueError(f"not ISO country codes: {', '.join(unknown)} (such as US, GB, DE)")
    return codes


def mask_phone(number: str) -> str:
    """Mask the middle of a number for logs: ``+15551234567`` → ``+1555•••4567``."""
    if len(number) <= 8:
        return number[:2] + "•••"
    return number[:5] + "•••" + number[-4:]
