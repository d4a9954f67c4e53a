from __future__ import annotations

import pytest

from app.pipeline.recipients import InvalidRecipient, mask_phone, normalize_phone


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
