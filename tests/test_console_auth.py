"""The console's session cookie and CSRF tokens, without a browser: what is signed cannot
be changed, what expired is refused, the cookie is Secure over HTTPS, the token is never in
it, and the open redirect a `next` parameter invites is closed."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from fastapi import Request, Response

from app.console.auth import COOKIE, Session, SessionKeys
from app.console.routes import _safe_next
from tests.conftest import ADMIN_TOKEN, REPO, service_settings


def _keys(**overrides: Any) -> SessionKeys:
    return SessionKeys(service_settings(REPO / "destinations.example.yaml", **overrides))


def _request(cookie: str | None = None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "path": "/console",
            "headers": headers,
            "server": ("test", 443 if scheme == "https" else 80),
            "query_string": b"",
        }
    )


def _cookie(keys: SessionKeys, session: Session, scheme: str = "http") -> tuple[str, str]:
    response = Response()
    keys.write(_request(scheme=scheme), response, session)
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1], header


def test_a_signed_session_reads_back_and_a_changed_one_does_not() -> None:
    keys = _keys()
    session = keys.new_session(True)
    value, header = _cookie(keys, session)
    assert keys.read(_request(value)) == session
    assert ADMIN_TOKEN not in header
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/console" in header
    assert "Secure" not in header
    payload, signature = value.rsplit(".", 1)
    forged = base64.urlsafe_b64encode(
        orjson.dumps({"sid": session.sid, "exp": session.expires + 10**6, "auth": True})
    ).decode()
    assert keys.read(_request(f"{forged}.{signature}")) is None
    tail = "BB" if signature.endswith("AA") else "AA"  # a changed signature, always
    assert keys.read(_request(f"{payload}.{signature[:-2]}{tail}")) is None
    assert keys.read(_request("garbage")) is None
    # Another admin token: every session of the old one ends.
    assert _keys(admin_token="another-admin-token").read(_request(value)) is None


def test_an_expired_session_is_refused() -> None:
    keys = _keys()
    expired = Session("sid", int(time.time()) - 1, True)
    value, _ = _cookie(keys, expired)
    assert keys.read(_request(value)) is None


def test_the_cookie_is_secure_over_https_or_behind_an_https_public_url() -> None:
    keys = _keys()
    _, header = _cookie(keys, keys.new_session(True), scheme="https")
    assert "Secure" in header
    proxied = _keys(public_base_url="https://sms.example.com")
    _, header = _cookie(proxied, proxied.new_session(True))
    assert "Secure" in header


def test_csrf_tokens_belong_to_one_session() -> None:
    keys = _keys()
    one, other = keys.new_session(True), keys.new_session(True)
    assert keys.csrf_valid(one, keys.csrf_token(one))
    assert not keys.csrf_valid(one, keys.csrf_token(other))
    assert not keys.csrf_valid(one, None)
    assert not keys.csrf_valid(one, "")


def test_the_admin_token_is_compared_exactly() -> None:
    keys = _keys()
    assert keys.token_matches(ADMIN_TOKEN)
    assert not keys.token_matches(ADMIN_TOKEN[:-1])
    assert not keys.token_matches(ADMIN_TOKEN + "x")
    assert not keys.token_matches("")


def test_login_only_sends_back_into_the_console() -> None:
    assert _safe_next("/console/deliveries?status=failed") == "/console/deliveries?status=failed"
    for target in (
        "https://evil.example/",
        "//evil.example/console",
        "/v1/deliveries",
        "/console\\x",
    ):
        assert _safe_next(target) == "/console"
