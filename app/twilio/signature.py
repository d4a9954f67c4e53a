"""`X-Twilio-Signature`: proof that a webhook request comes from Twilio.

Twilio signs each request with HMAC-SHA1 keyed by the account's auth token, over the full
URL it called followed by every POST parameter, sorted by name, as name + value; the result
is base64-encoded. For a JSON body, the URL carries ``bodySHA256`` (the body's SHA-256, hex)
and only the URL is signed.

The URL must be the *public* one Twilio called (`SMS_PUBLIC_BASE_URL`), not the one the app
sees behind a TLS-terminating proxy. Twilio may sign it with or without the scheme's
default port (``:443`` / ``:80``), so both forms are tried — as Twilio's own validator does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

Params = Mapping[str, str | Sequence[str]]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """Twilio's signature of `url` + sorted `params` (repeated values: distinct, sorted)."""
    payload = url
    for name in sorted(params):
        values = params[name]
        for value in [values] if isinstance(values, str) else sorted(set(values)):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def validate_signature(
    auth_token: str,
    url: str,
    params: Params,
    signature: str | None,
    body: bytes | None = None,
) -> bool:
    """True when `signature` is Twilio's for this request (either port form of `url`)."""
    if not signature:
        return False
    body_hash = parse_qs(urlsplit(url).query).get("bodySHA256")
    if body_hash:
        # JSON webhook: the body is bound by its hash in the URL; no form params are signed.
        if body is None or not hmac.compare_digest(hashlib.sha256(body).hexdigest(), body_hash[0]):
            return False
        params = {}
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, params), signature)
        for candidate in _port_forms(url)
    )


def _port_forms(url: str) -> tuple[str, str]:
    """`url` as given, and with its scheme's default port added or removed."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default is not None:
        other = f"{host}:{default}"
    elif parts.port is not None and parts.port == default:
        other = host
    else:
        return url, url  # a non-default port is part of the URL Twilio called
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{other}" if userinfo else other
    return url, urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
