"""The console's session: a signed, expiring cookie given for SMS_ADMIN_TOKEN, and the
CSRF token every form carries.

The cookie holds `{sid, exp, auth}` signed with HMAC-SHA256 under a key derived from the
admin token, so every process of a deployment accepts it and changing the token ends
every session. A visitor gets an unauthenticated session (auth false) with the login
form, so that the login form has a CSRF token too; logging in issues a new session id
(no fixation). The CSRF token is an HMAC of the session id: a page from another site can
neither read it nor forge it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from fastapi import Request, Response

from app.settings import Settings

COOKIE = "smsdest_console"
LIFETIME_S = 12 * 3600
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires: int
    authenticated: bool


class SessionKeys:
    """Signs and checks session cookies and CSRF tokens for one admin token."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        # No admin token (SMS_ADMIN_AUTH=none): sessions only carry CSRF, per process.
        secret = token.encode() if token else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"smsdest console session v1\0" + secret).digest()

    @property
    def open(self) -> bool:
        """True when the admin API is open (SMS_ADMIN_AUTH=none): no login needed."""
        return self._settings.admin_auth == "none"

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison with SMS_ADMIN_TOKEN."""
        token = self._settings.admin_token
        if token is None:
            return False
        return hmac.compare_digest(given.encode(), token.get_secret_value().encode())

    def new_session(self, authenticated: bool) -> Session:
        return Session(secrets.token_urlsafe(18), int(time.time()) + LIFETIME_S, authenticated)

    def read(self, request: Request) -> Session | None:
        """The request's session if its cookie is ours, intact and not expired."""
        raw = request.cookies.get(COOKIE)
        if not raw or "." not in raw or len(raw) > 512:
            return None
        payload, _, signature = raw.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(str(data["sid"]), int(data["exp"]), bool(data["auth"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def write(self, request: Request, response: Response, session: Session) -> None:
        """Set the cookie: HttpOnly, SameSite=Strict, Secure whenever served over HTTPS."""
        payload = base64.urlsafe_b64encode(
            orjson.dumps(
                {"sid": session.sid, "exp": session.expires, "auth": session.authenticated}
            )
        ).decode()
        response.set_cookie(
            COOKIE,
            f"{payload}.{self._sign(payload)}",
            max_age=max(session.expires - int(time.time()), 0),
            path="/console",
            secure=self._https(request),
            httponly=True,
            samesite="strict",
        )

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path="/console", secure=self._https(request), httponly=True, samesite="strict"
        )

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf:" + session.sid)

    def csrf_valid(self, session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf_token(session))

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _https(self, request: Request) -> bool:
        base = self._settings.public_base_url or ""
        return request.url.scheme == "https" or base.startswith("https://")
