"""A real local HTTP server that plays Twilio's Messages API, for tests.

It records every request, answers like Twilio (201 with a Message resource, or Twilio's
error JSON), and can be scripted to answer 429/5xx, to stall (client timeouts) or to drop
the connection.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_CREATE = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")
_FETCH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages/(\w+)\.json$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]
    basic_auth: tuple[str, str] | None
    received_at: float


@dataclass
class ScriptedResponse:
    status: int
    json_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without answering


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio:
    """Start it, point the service's Twilio base URL at `base_url`, inspect `requests`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.latency = 0.0
        self._script: list[ScriptedResponse] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def message_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _CREATE.match(r.path)]

    def enqueue(self, *responses: ScriptedResponse) -> None:
        """Answer the next requests with these, in order; then the default answer."""
        with self._lock:
            self._script.extend(responses)

    @staticmethod
    def fail_with(status: int, code: int, message: str) -> ScriptedResponse:
        return ScriptedResponse(status, twilio_error(status, code, message))

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least `n` message-create requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.message_requests
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} Twilio requests, got {len(got)}")
            time.sleep(0.01)

    # --- serving -----------------------------------------------------------------------

    def _next_scripted(self) -> ScriptedResponse | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _default_answer(self, method: str, path: str, form: dict[str, str]) -> ScriptedResponse:
        time.sleep(self.latency)
        if method == "POST" and (match := _CREATE.match(path)):
            if "To" not in form:
                return self.fail_with(400, 21604, "A 'To' phone number is required.")
            if "Body" not in form and "MediaUrl" not in form:
                return self.fail_with(400, 21602, "Message body is required.")
            message = _message_resource(match.group(1), form)
            with self._lock:
                self.messages[message["sid"]] = message
            return ScriptedResponse(201, message)
        if method == "GET" and (match := _FETCH.match(path)):
            with self._lock:
                found = self.messages.get(match.group(2))
            if found:
                return ScriptedResponse(200, found)
        return self.fail_with(404, 20404, f"The requested resource {path} was not found")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                fake._record(
                    RecordedRequest(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        form=form,
                        basic_auth=_basic_auth(self.headers.get("Authorization")),
                        received_at=time.monotonic(),
                    )
                )
                answer = fake._next_scripted() or fake._default_answer(
                    self.command, self.path, form
                )
                time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                payload = json.dumps(answer.json_body).encode() if answer.json_body else b""
                self.send_response(answer.status)
                if answer.json_body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

        return Handler


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _message_resource(account_sid: str, form: dict[str, str]) -> dict[str, Any]:
    """Shaped like the 201 example of Twilio's OpenAPI description."""
    sid = "SM" + uuid.uuid4().hex
    now = formatdate(usegmt=True)
    service = form.get("MessagingServiceSid")
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": form.get("Body", ""),
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": None if service else form.get("From"),
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"
        },
        "to": form.get("To"),
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }
