from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.pipeline.recipients import (
    InvalidRecipient,
    mask_phone,
    normalize_phone,
    normalize_recipient,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155552671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        (" 415.555.2671 ", "US", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 7911 123456", "US", "+447911123456"),
    ],
)
def test_normalizes_to_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+1", "+15551234567", "12"])
def test_rejects_unparseable_or_invalid(raw: str) -> None:
    with pytest.raises(InvalidRecipient):
        normalize_phone(raw, "US")


def test_error_message_masks_the_number() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        normalize_phone("+15551234567", "US")
    assert "1234567" not in str(caught.value)


def test_mask_phone() -> None:
    assert mask_phone("+15551234567") == "+1555•••4567"


@pytest.mark.parametrize(
    "raw",
    [
        "+14155552671\n",
        "\u200e+14155552671",  # a left-to-right mark, as copied from a web page
        "＋１４１５５５５２６７１",  # full-width
        "+١٤١٥٥٥٥٢٦٧١",  # Arabic-Indic
        "+۱۴۱۵۵۵۵۲۶۷۱",  # Extended Arabic-Indic
        "tel:+1-415-555-2671",
    ],
)
def test_every_written_form_becomes_ascii_e164(raw: str) -> None:
    assert normalize_phone(raw, "US") == normalize_phone(raw, None) == "+14155552671"


def test_without_a_region_only_international_numbers() -> None:
    with pytest.raises(InvalidRecipient, match="not in international format"):
        normalize_phone("(415) 555-2671", None)


def test_an_extension_is_refused_not_dropped() -> None:
    with pytest.raises(InvalidRecipient, match="extension"):
        normalize_phone("+1 415 555 2671 ext. 12", "US")


def _two_parses(raw: str, region: str | None) -> tuple[str, str] | None:
    """What normalize_recipient replaced: libphonenumber's `is_valid_number`, then the
    E.164 answer parsed again for its region."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) or number.extension:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "001"


# Country codes shared by several regions (NANP's +1, +7, +44 with its Crown
# dependencies, +262, +590…) and non-geographic ones (+800, +882): where the region is
# found by validating, not by the code alone.
_EXAMPLES = [
    "+14155552671",
    "+16135550123",  # Canada
    "+12642351234",  # Anguilla (+1 264)
    "+18765551234",  # Jamaica
    "+447911123456",
    "+447624123456",  # Isle of Man
    "+79123456789",
    "+77012345678",  # Kazakhstan
    "+80012345678",
    "+882345678901",
    "+262692123456",  # Mayotte / Réunion
    "+590690123456",
    "020 7946 0958",
]


@pytest.mark.parametrize("raw", _EXAMPLES)
@pytest.mark.parametrize("region", ["US", "GB", None])
def test_one_parse_gives_what_two_gave(raw: str, region: str | None) -> None:
    expected = _two_parses(raw, region)
    if expected is None:
        with pytest.raises(InvalidRecipient):
            normalize_recipient(raw, region)
    else:
        assert normalize_recipient(raw, region) == expected


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from([1, 7, 39, 44, 47, 61, 262, 590, 599, 800, 882, 33, 49, 91]),
    digits=st.text("0123456789", min_size=4, max_size=13),
)
def test_one_parse_gives_what_two_gave_for_any_digits(code: int, digits: str) -> None:
    raw = f"+{code}{digits}"
    expected = _two_parses(raw, None)
    if expected is None:
        with pytest.raises(InvalidRecipient):
            normalize_recipient(raw, None)
    else:
        assert normalize_recipient(raw, None) == expected
