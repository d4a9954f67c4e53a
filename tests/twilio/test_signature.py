"""Signature validation, with the twilio package's RequestValidator as the oracle."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from app.twilio.signature import compute_signature, validate_signature

TOKEN = "12345"
ORACLE = RequestValidator(TOKEN)
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def test_twilios_published_example() -> None:
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert ORACLE.compute_signature(URL, PARAMS) == expected
    assert compute_signature(TOKEN, URL, PARAMS) == expected
    assert validate_signature(TOKEN, URL, PARAMS, expected)


def test_tampering_is_detected() -> None:
    signature = ORACLE.compute_signature(URL, PARAMS)
    assert not validate_signature(TOKEN, URL, {**PARAMS, "Digits": "9999"}, signature)
    assert not validate_signature(TOKEN, URL, {**PARAMS, "Extra": "1"}, signature)
    assert not validate_signature("other-token", URL, PARAMS, signature)
    for url in (
        "https://mycompany.com/other.php?foo=1&bar=2",
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        "https://mycompany.com/myapp.php?foo=1&bar=3",
    ):
        assert not validate_signature(TOKEN, url, PARAMS, signature)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature(signature: str | None) -> None:
    assert not validate_signature(TOKEN, URL, PARAMS, signature)


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("https://example.com:443/hook", "https://example.com/hook"),
        ("https://example.com/hook", "https://example.com:443/hook"),
        ("http://example.com:80/hook?x=1", "http://example.com/hook?x=1"),
        ("http://example.com/hook", "http://example.com:80/hook"),
    ],
)
def test_default_port_in_either_form(signed: str, received: str) -> None:
    signature = ORACLE.compute_signature(signed, PARAMS)
    assert validate_signature(TOKEN, received, PARAMS, signature)
    assert ORACLE.validate(received, PARAMS, signature)  # the oracle agrees


def test_non_default_port_is_part_of_the_url() -> None:
    signature = ORACLE.compute_signature("https://example.com:8443/hook", PARAMS)
    assert not validate_signature(TOKEN, "https://example.com/hook", PARAMS, signature)
    assert validate_signature(TOKEN, "https://example.com:8443/hook", PARAMS, signature)


def test_json_body_with_body_sha256() -> None:
    body = b'{"MessageSid": "SM123", "MessageStatus": "delivered"}'
    url = f"https://example.com/hook?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = ORACLE.compute_signature(url, {})
    assert ORACLE.validate(url, body.decode(), signature)
    assert validate_signature(TOKEN, url, {}, signature, body)
    assert not validate_signature(TOKEN, url, {}, signature, body + b" ")
    assert not validate_signature(TOKEN, url, {}, signature, None)


def test_unicode_and_repeated_params() -> None:
    params = {"Body": "héllo 👋", "MediaUrl": ["https://b.example/2", "https://a.example/1"]}

    # The oracle takes repeated values as a MultiDict-like mapping with getall().
    class Multi(dict[str, list[str]]):
        def getall(self, key: str) -> list[str]:
            return self[key]

    oracle_params = Multi({"Body": ["héllo 👋"], "MediaUrl": params["MediaUrl"]})
    expected = ORACLE.compute_signature(URL, oracle_params)
    assert compute_signature(TOKEN, URL, params) == expected


names = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12)
values = st.text(max_size=40)


@given(
    params=st.dictionaries(names, values, max_size=8),
    path=st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=20),
)
def test_agrees_with_twilios_validator(params: dict[str, str], path: str) -> None:
    url = f"https://hooks.example.com/{path}"
    assert compute_signature(TOKEN, url, params) == ORACLE.compute_signature(url, params)
