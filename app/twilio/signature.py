"""`X-Twilio-Signature`: proof that a webhook request comes from Twilio.

Twilio signs each request with HMAC-SHA1 keyed by the account's auth token, over the full
URL it called followed by every POST parameter, sorted by name, as name + value (a repeated
parameter contributes each of its distinct values, sorted); the digest is base64-encoded.
For a JSON body, the URL's query carries ``bodySHA256`` (the body's SHA-256, hex) and only
the URL is signed: the body is bound to the signature through that hash.

The URL must be the *public* one Twilio called (from `SMS_PUBLIC_BASE_URL`), not the one the
app sees behind a TLS-terminating proxy (``http://app:8000/...``), or no signature matches.
Twilio's load balancers and proxies do not sign the port consistently: the signature may be
over the URL with or without the scheme's default port (``:443`` / ``:80``), so both forms
are tried, as Twilio's own validator does. A non-default port (``:8443``) is part of the URL
Twilio called and is never dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

Params = Mapping[str, str | Sequence[str]]

_DEFAULT_PORTS = {"https": "443", "http": "80"}


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """Twilio's signature of a request to `url` with form `params`.

    HMAC-SHA1 keyed by `auth_token` over `url` followed by, for each parameter name in
    sorted order, the name and its value; a repeated parameter (a sequence of values) adds
    name + value for each *distinct* value in sorted order, exactly as Twilio's
    ``RequestValidator`` does. Returns the digest base64-encoded.
    """
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
    """True when `signature` (the ``X-Twilio-Signature`` header) is Twilio's for this request.

    `url` is the public URL Twilio called, query string included; `params` the form fields.
    The URL is tried as given and in its other default-port form. When the query has
    ``bodySHA256``, `body` must hash to it and `params` are ignored (JSON webhooks). Never
    raises on hostile input: a missing, empty or malformed signature is simply False.
    """
    if not signature:
        return False
    try:
        body_hash = parse_qs(urlsplit(url).query, keep_blank_values=True).get("bodySHA256")
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    if body_hash is not None:
        # JSON webhook: the body is bound by its hash in the URL; no form params are signed.
        # (A blank ``bodySHA256=`` still demands a matching body: fail closed.)
        if body is None or not _equal(hashlib.sha256(body).hexdigest(), body_hash[0]):
            return False
        params = {}
    return any(
        _equal(compute_signature(auth_token, candidate, params), signature)
        for candidate in _port_forms(url)
    )


def _equal(a: str, b: str) -> bool:
    """Constant-time string comparison that also accepts non-ASCII (hostile) input."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _port_forms(url: str) -> tuple[str, ...]:
    """`url` as given, then with its scheme's default port added or removed.

    Only the port is touched: the rest of the URL (host case, IPv6 brackets, userinfo, path,
    query) stays byte for byte as given, since it is what Twilio signed. A URL with a
    non-default or malformed port, or an unknown scheme, has no other form.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    default = _DEFAULT_PORTS.get(parts.scheme)
    head, slashes, rest = url.partition("//")
    if default is None or not parts.netloc or not slashes or not rest.startswith(parts.netloc):
        return (url,)
    tail = rest[len(parts.netloc) :]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":")
    if not colon or hostport.endswith("]"):  # no port (a bracketed IPv6 host has colons)
        other = f"{hostport}:{default}"
    elif port == default:
        other = host
    else:
        return (url,)
    return url, f"{head}//{userinfo}{at}{other}{tail}"
