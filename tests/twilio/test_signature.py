"""Signature validation, with the twilio package's RequestValidator as the oracle."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

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


class Multi(dict[str, list[str]]):
    """The MultiDict shape (Flask's ``getall``) through which the oracle takes repeated params."""

    def getall(self, key: str) -> list[str]:
        return self[key]


def test_twilios_published_example() -> None:
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert ORACLE.compute_signature(URL, PARAMS) == expected
    assert compute_signature(TOKEN, URL, PARAMS) == expected
    assert validate_signature(TOKEN, URL, PARAMS, expected)


def test_tampering_is_detected() -> None:
    signature = ORACLE.compute_signature(URL, PARAMS)
    assert validate_signature(TOKEN, URL, PARAMS, signature)
    assert not validate_signature(TOKEN, URL, {**PARAMS, "Digits": "9999"}, signature)
    assert not validate_signature(TOKEN, URL, {**PARAMS, "Extra": "1"}, signature)
    assert not validate_signature(TOKEN, URL, {**PARAMS, "Extra": ""}, signature)
    missing = {k: v for k, v in PARAMS.items() if k != "Digits"}
    assert not validate_signature(TOKEN, URL, missing, signature)
    assert not validate_signature("other-token", URL, PARAMS, signature)
    assert not validate_signature(TOKEN, URL, PARAMS, signature[:-2] + "A=")
    for url in (
        "https://mycompany.com/other.php?foo=1&bar=2",  # path
        "http://mycompany.com/myapp.php?foo=1&bar=2",  # scheme
        "https://mycompany.com/myapp.php?foo=1&bar=3",  # query value
        "https://mycompany.com/myapp.php?bar=2&foo=1",  # query order: the URL is signed as is
        "https://mycompany.com/myapp.php",  # query dropped
        "https://evil.example/myapp.php?foo=1&bar=2",  # host
    ):
        assert not validate_signature(TOKEN, url, PARAMS, signature), url
        assert not ORACLE.validate(url, PARAMS, signature), url


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature(signature: str | None) -> None:
    assert not validate_signature(TOKEN, URL, PARAMS, signature)


@pytest.mark.parametrize("signature", ["é", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=é", "\udcff", "👋" * 28])
def test_hostile_signature_is_rejected_not_raised(signature: str) -> None:
    # Headers arrive latin-1 decoded; hmac.compare_digest raises TypeError on non-ASCII str.
    assert not validate_signature(TOKEN, URL, PARAMS, signature)


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("https://example.com:443/hook", "https://example.com/hook"),
        ("https://example.com/hook", "https://example.com:443/hook"),
        ("http://example.com:80/hook?x=1", "http://example.com/hook?x=1"),
        ("http://example.com/hook", "http://example.com:80/hook"),
        ("https://Example.COM/hook", "https://Example.COM:443/hook"),  # host case kept
        ("https://Example.COM:443/hook", "https://Example.COM/hook"),
        ("https://[2001:db8::1]:443/hook", "https://[2001:db8::1]/hook"),  # IPv6 brackets kept
        ("https://example.com/hook#frag", "https://example.com:443/hook#frag"),
    ],
)
def test_default_port_in_either_form(signed: str, received: str) -> None:
    signature = ORACLE.compute_signature(signed, PARAMS)
    assert validate_signature(TOKEN, received, PARAMS, signature)
    assert validate_signature(TOKEN, signed, PARAMS, signature)
    assert ORACLE.validate(received, PARAMS, signature)  # the oracle agrees


@pytest.mark.parametrize(("scheme", "port"), [("https", ":443"), ("http", ":80")])
def test_ipv6_host_in_either_form(scheme: str, port: str) -> None:
    # Ours only: RequestValidator's remove_port cuts "[::1]:443" down to "[".
    for signed, received in (("", port), (port, "")):
        signature = compute_signature(TOKEN, f"{scheme}://[::1]{signed}/hook", PARAMS)
        assert validate_signature(TOKEN, f"{scheme}://[::1]{received}/hook", PARAMS, signature)
    signature = compute_signature(TOKEN, f"{scheme}://[::1]:8443/hook", PARAMS)
    assert not validate_signature(TOKEN, f"{scheme}://[::1]/hook", PARAMS, signature)


def test_default_port_belongs_to_the_scheme() -> None:
    signature = ORACLE.compute_signature("https://example.com:80/hook", PARAMS)
    assert not validate_signature(TOKEN, "https://example.com/hook", PARAMS, signature)
    signature = ORACLE.compute_signature("http://example.com:443/hook", PARAMS)
    assert not validate_signature(TOKEN, "http://example.com/hook", PARAMS, signature)


def test_non_default_port_is_part_of_the_url() -> None:
    with_port = ORACLE.compute_signature("https://example.com:8443/hook", PARAMS)
    without_port = ORACLE.compute_signature("https://example.com/hook", PARAMS)
    assert validate_signature(TOKEN, "https://example.com:8443/hook", PARAMS, with_port)
    assert not validate_signature(TOKEN, "https://example.com/hook", PARAMS, with_port)
    assert not validate_signature(TOKEN, "https://example.com:443/hook", PARAMS, with_port)
    # Deliberately stricter than RequestValidator, which strips *any* port from the URL
    # received and so accepts a port-less signature at :8443.
    assert ORACLE.validate("https://example.com:8443/hook", PARAMS, without_port)
    assert not validate_signature(TOKEN, "https://example.com:8443/hook", PARAMS, without_port)


@pytest.mark.parametrize(
    "url",
    ["https://example.com:abc/hook", "https://example.com:99999/hook", "https://[::1/hook"],
)
def test_malformed_url_is_rejected_not_raised(url: str) -> None:
    signature = compute_signature(TOKEN, url, PARAMS)
    assert validate_signature(TOKEN, url, PARAMS, signature) is ("[" not in url)
    assert not validate_signature(TOKEN, url, PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_userinfo_is_kept_in_both_port_forms() -> None:
    # (RequestValidator mangles these: its remove_port keeps only netloc.split(":")[0].)
    signature = compute_signature(TOKEN, "https://user:pw@example.com/hook", PARAMS)
    assert validate_signature(TOKEN, "https://user:pw@example.com:443/hook", PARAMS, signature)
    assert not validate_signature(TOKEN, "https://example.com:443/hook", PARAMS, signature)


BODY = b'{"MessageSid": "SM123", "MessageStatus": "delivered", "Body": "h\xc3\xa9llo"}'
JSON_URL = f"https://example.com/hook?bodySHA256={hashlib.sha256(BODY).hexdigest()}"


def test_json_body_with_body_sha256() -> None:
    signature = ORACLE.compute_signature(JSON_URL, {})
    assert ORACLE.validate(JSON_URL, BODY.decode(), signature)
    assert validate_signature(TOKEN, JSON_URL, {}, signature, BODY)
    # Form params are ignored: only the URL (which binds the body through its hash) is signed.
    assert validate_signature(TOKEN, JSON_URL, {"MessageSid": "SM999"}, signature, BODY)
    port_form = JSON_URL.replace("example.com", "example.com:443")
    assert validate_signature(TOKEN, port_form, {}, signature, BODY)


def test_json_body_tampered_or_missing() -> None:
    signature = ORACLE.compute_signature(JSON_URL, {})
    tampered = BODY.replace(b"delivered", b"failed")
    assert not ORACLE.validate(JSON_URL, tampered.decode(), signature)
    assert not validate_signature(TOKEN, JSON_URL, {}, signature, tampered)
    assert not validate_signature(TOKEN, JSON_URL, {}, signature, BODY + b" ")
    assert not validate_signature(TOKEN, JSON_URL, {}, signature, None)
    assert not validate_signature(TOKEN, JSON_URL, {}, signature, b"")


def test_json_body_hash_must_match_exactly() -> None:
    # A blank ``bodySHA256=`` fails closed (RequestValidator's parse_qs would drop it and
    # then not check the body at all).
    for bad in ("%C3%A9", hashlib.sha256(BODY).hexdigest().upper(), "", "0" * 64):
        url = f"https://example.com/hook?bodySHA256={bad}"
        signature = ORACLE.compute_signature(url, {})
        assert not validate_signature(TOKEN, url, {}, signature, BODY), bad


def test_unicode_params() -> None:
    params = {"Body": "héllo 👋", "From": "+33612345678", "Ünïcode": "値"}
    expected = ORACLE.compute_signature(URL, params)
    assert compute_signature(TOKEN, URL, params) == expected
    assert validate_signature(TOKEN, URL, params, expected)
    assert not validate_signature(TOKEN, URL, {**params, "Body": "hello 👋"}, expected)


def test_repeated_params() -> None:
    media = ["https://b.example/2", "https://a.example/1", "https://b.example/2"]
    params = {"Body": "héllo 👋", "MediaUrl": media}
    expected = ORACLE.compute_signature(URL, Multi({"Body": ["héllo 👋"], "MediaUrl": media}))
    assert compute_signature(TOKEN, URL, params) == expected
    assert compute_signature(TOKEN, URL, {"Body": ["héllo 👋"], "MediaUrl": media}) == expected
    # Values are signed as a sorted set: order and duplicates do not matter (as in the oracle).
    assert compute_signature(TOKEN, URL, {**params, "MediaUrl": media[1:]}) == expected
    assert validate_signature(TOKEN, URL, params, expected)
    assert not validate_signature(TOKEN, URL, {**params, "MediaUrl": media[:1]}, expected)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real: Callable[..., bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    signature = ORACLE.compute_signature(URL, PARAMS)
    assert validate_signature(TOKEN, URL, PARAMS, signature)
    assert (signature.encode(), signature.encode()) in calls
    calls.clear()
    assert not validate_signature(TOKEN, URL, PARAMS, "short")
    assert calls and all(b == b"short" for _, b in calls)
    calls.clear()
    assert validate_signature(TOKEN, JSON_URL, {}, ORACLE.compute_signature(JSON_URL, {}), BODY)
    assert (hashlib.sha256(BODY).hexdigest().encode(),) * 2 in calls


# --- properties: our computation is Twilio's -------------------------------------------------

values = st.text(max_size=40)
names = st.text(min_size=1, max_size=12)
url_chars = st.sampled_from("abcXYZ019-._~/%")
paths = st.text(url_chars, max_size=20)
queries = st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=5), st.text("abc019", max_size=5), max_size=3
).map(lambda q: "?" + "&".join(f"{k}={v}" for k, v in q.items()) if q else "")


@given(params=st.dictionaries(names, values, max_size=8), path=paths, query=queries)
def test_agrees_with_twilios_validator(params: dict[str, str], path: str, query: str) -> None:
    url = f"https://hooks.example.com/{path}{query}"
    expected = ORACLE.compute_signature(url, params)
    assert compute_signature(TOKEN, url, params) == expected
    assert validate_signature(TOKEN, url, params, expected)


@given(params=st.dictionaries(names, st.lists(values, min_size=1, max_size=4), max_size=5))
def test_agrees_with_twilios_validator_on_repeated_params(params: dict[str, list[str]]) -> None:
    expected = ORACLE.compute_signature(URL, Multi(params))
    assert compute_signature(TOKEN, URL, params) == expected


@given(
    scheme=st.sampled_from(["http", "https"]),
    # (No IPv6: RequestValidator's remove_port cuts "[::1]:80" down to "[".)
    host=st.sampled_from(["example.com", "Hooks.Example.COM", "127.0.0.1", "localhost"]),
    signed_port=st.sampled_from(["", ":80", ":443", ":8443"]),
    received_port=st.sampled_from(["", ":80", ":443", ":8443"]),
    path=paths,
    query=queries,
)
def test_validate_agrees_with_twilios_validator(
    scheme: str, host: str, signed_port: str, received_port: str, path: str, query: str
) -> None:
    signed = f"{scheme}://{host}{signed_port}/{path}{query}"
    received = f"{scheme}://{host}{received_port}/{path}{query}"
    signature = ORACLE.compute_signature(signed, PARAMS)
    expected = ORACLE.validate(received, PARAMS, signature)
    default = {"http": ":80", "https": ":443"}[scheme]
    if received_port not in ("", default) and signed_port != received_port:
        # The one deliberate difference: RequestValidator drops *any* port from the URL
        # received (even :443 on http); we only ever add or drop the scheme's default port.
        expected = False
    assert validate_signature(TOKEN, received, PARAMS, signature) is expected
