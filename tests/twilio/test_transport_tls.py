"""The Twilio transport over real TLS (Twilio is HTTPS only): certificates are verified,
and a handshake that fails is a failure before sending, safe to retry."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import trustme
from pydantic import SecretStr

from app.sms.message import OutboundMessage
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.errors import TwilioTransportError
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, twilio_http

MESSAGE = OutboundMessage(to="+14155552671", body="Hi", from_number="+15005550006")
CREDENTIALS = TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)


class _Created(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(self.path)
        body = json.dumps({"sid": "SM" + "0" * 32, "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_twilio(ca: trustme.CA) -> Iterator[str]:
    """A TLS server for 127.0.0.1 whose certificate only `ca` vouches for."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Created)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _Created.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_an_untrusted_certificate_is_refused_before_sending(https_twilio: str) -> None:
    async with twilio_http() as http:
        with pytest.raises(TwilioTransportError) as caught:
            await TwilioClient(http, CREDENTIALS, https_twilio).send_message(MESSAGE)
    assert not caught.value.request_sent and caught.value.retryable
    assert _Created.received == []


async def test_a_trusted_certificate_carries_the_request(
    https_twilio: str, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SSL_CERT_FILE is honoured as httpx honours it (a company CA, say).
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with twilio_http() as http:
        created = await TwilioClient(http, CREDENTIALS, https_twilio).send_message(MESSAGE)
    assert created.sid == "SM" + "0" * 32
    assert _Created.received == [f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"]
