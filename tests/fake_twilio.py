"""A real local HTTP server that plays Twilio's Messages API, for tests.

It records every request and answers like Twilio: create (201; scheduled when
`ScheduleType=fixed`), fetch, list with filters and paging, update (redact / cancel) and
delete (204), with Twilio's error JSON where Twilio would refuse. It can be scripted to
answer 429/5xx, to stall (client timeouts) or to drop the connection.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

_CREATE = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")
_FETCH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages/(\w+)\.json$")

# The account `add_message` seeds into unless told otherwise: the one tests/conftest.py uses.
DEFAULT_ACCOUNT_SID = "AC" + "a1" * 16
# Statuses after which Twilio has finished with a message; before, DELETE answers 20009.
FINAL_STATUSES = frozenset(
    {"sent", "delivered", "undelivered", "failed", "canceled", "received", "read"}
)
# The scheduling window Twilio accepts for SendAt (error 35115 outside it).
SCHEDULE_MIN, SCHEDULE_MAX = timedelta(minutes=5), timedelta(days=35)
_LIST_FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


@dataclass
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]  # first value of each form field
    basic_auth: tuple[str, str] | None
    received_at: float
    form_lists: dict[str, list[str]] = field(default_factory=dict)  # every value, in order
    query: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ScriptedResponse:
    status: int
    json_body: dict[str, Any] | None = None
    # Do what the default answer does first (create the message): then `drop` is Twilio
    # accepting a message and losing the connection before its answer.
    accept: bool = field(default=False, kw_only=True)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without answering
    trickle: float = 0.0  # seconds between bytes of the answer (status line included)


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Server(ThreadingHTTPServer):
    # A worker opens up to SMS_WORKER_CONCURRENCY (100) connections at once; past the
    # default backlog of 5, handshakes are dropped and requests time out unread.
    request_queue_size = 256


class FakeTwilio:
    """Start it, point the service's Twilio base URL at `base_url`, inspect `requests`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        # Every message by SID, in creation order (lists answer newest first, like Twilio).
        self.messages: dict[str, dict[str, Any]] = {}
        self.latency = 0.0
        self.trickle = 0.0  # default answers trickle too, one byte every `trickle` seconds
        # Twilio sends a created message this long after creating it (status `sent`,
        # `date_sent` set, `from` chosen for a Messaging Service); None: never, it stays as
        # created (`queued` / `accepted`).
        self.send_after: float | None = None
        self.service_sender = "+15005550006"  # the number a Messaging Service sends from
        # A created message shows in list answers only this long after its creation, as in
        # Twilio's list (read from a replica: eventually consistent).
        self.list_delay = 0.0
        self._created: dict[str, float] = {}  # created through the API: SID → time.time()
        self._script: list[ScriptedResponse] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: stop() waits up to one interval (the default is 0.5 s,
        # paid by every test that uses the fake).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever if never started
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The message-create requests (POST Messages.json) only."""
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

    def add_message(self, **fields: Any) -> dict[str, Any]:
        """Seed a stored message (as if created earlier) and return it.

        Fields are the resource's JSON names (`from_` stands for `from`); datetimes become
        Twilio's RFC 2822 strings. Defaults: a delivered outbound SMS in DEFAULT_ACCOUNT_SID.
        """
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        for name in ("date_created", "date_sent", "date_updated"):
            if isinstance(fields.get(name), datetime):
                fields[name] = format_datetime(fields[name].astimezone(UTC), usegmt=True)
        account_sid = fields.pop("account_sid", DEFAULT_ACCOUNT_SID)
        form = {"To": fields.get("to", "+14155552671"), "Body": fields.get("body", "seeded")}
        message = _message_resource(account_sid, form, [], "delivered")
        if "sid" in fields:  # keep the resource's URIs consistent with a chosen SID
            message = _with_sid(message, fields["sid"])
        message["from"] = "+15005550006"
        message["date_sent"] = message["date_created"]
        message.update(fields)
        with self._lock:
            self.messages[message["sid"]] = message
        return message

    # --- serving -----------------------------------------------------------------------

    def _next_scripted(self) -> ScriptedResponse | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _default_answer(self, request: RecordedRequest) -> ScriptedResponse:
        time.sleep(self.latency)
        answer = self._answer(request)
        answer.trickle = answer.trickle or self.trickle
        return answer

    def _answer(self, request: RecordedRequest) -> ScriptedResponse:
        method, path = request.method, urlsplit(request.path).path
        if match := _CREATE.match(path):
            if method == "POST":
                return self._create(match.group(1), request.form_lists)
            if method == "GET":
                return self._list(match.group(1), request.query)
        if match := _FETCH.match(path):
            account_sid, sid = match.groups()
            with self._lock:
                self._settle()
                found = self.messages.get(sid)
                if found is None or found["account_sid"] != account_sid:
                    return _not_found(path)
                if method == "GET":
                    return ScriptedResponse(200, dict(found))
                if method == "POST":
                    return _update(found, request.form)
                if method == "DELETE":
                    if found["status"] not in FINAL_STATUSES:
                        # Twilio's HTTP status for 20009 is not documented; 409 is our guess.
                        return self.fail_with(
                            409, 20009, "Cannot delete this resource before it is complete"
                        )
                    del self.messages[sid]
                    return ScriptedResponse(204)
        return _not_found(path)

    def _create(self, account_sid: str, form_lists: dict[str, list[str]]) -> ScriptedResponse:
        form = {key: values[0] for key, values in form_lists.items()}
        media = form_lists.get("MediaUrl", [])
        if "To" not in form:
            return self.fail_with(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body") and not media:
            return self.fail_with(400, 21602, "Message body is required.")
        if len(media) > 10:
            return self.fail_with(400, 21623, "Number of media files exceeds allowed limit.")
        status = "accepted" if form.get("MessagingServiceSid") else "queued"
        if form.get("ScheduleType") == "fixed":
            if refusal := self._schedule_refusal(form):
                return refusal
            status = "scheduled"
        message = _message_resource(account_sid, form, media, status)
        with self._lock:
            self.messages[message["sid"]] = message
            self._created[message["sid"]] = time.time()
        return ScriptedResponse(201, dict(message))

    def _settle(self) -> None:
        """Send (as Twilio would) every created message whose time has come. Under the lock."""
        if self.send_after is None:
            return
        due = time.time() - self.send_after
        for sid, created in self._created.items():
            message = self.messages.get(sid)
            if message is None or created > due or message["status"] not in ("queued", "accepted"):
                continue
            message["status"] = "sent"
            message["date_sent"] = formatdate(created + self.send_after, usegmt=True)
            message["date_updated"] = message["date_sent"]
            if message["messaging_service_sid"] and message["from"] is None:
                message["from"] = self.service_sender

    def _schedule_refusal(self, form: dict[str, str]) -> ScriptedResponse | None:
        """Twilio's checks on a scheduled create (the caller must get all of them right)."""
        if not form.get("MessagingServiceSid"):
            return self.fail_with(
                400, 35118, "MessagingServiceSid is required to schedule a message"
            )
        if "SendAt" not in form:
            return self.fail_with(400, 35111, "SendAt timestamp is missing")
        try:
            send_at = datetime.strptime(form["SendAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            send_at = None
        ahead = send_at - datetime.now(UTC) if send_at else None
        if ahead is None or not SCHEDULE_MIN < ahead <= SCHEDULE_MAX:
            return self.fail_with(400, 35115, "Scheduling does not support this timestamp")
        return None

    def _list(self, account_sid: str, query: dict[str, list[str]]) -> ScriptedResponse:
        """Twilio's list: newest first, filtered, paged with Page/PageSize/PageToken."""
        params = {key: values[0] for key, values in query.items()}
        try:
            page_size = int(params.get("PageSize", "50"))
            page = int(params.get("Page", "0"))
            days = {name: _filter_day(params[name]) for name in _LIST_FILTERS[2:] if name in params}
        except ValueError:
            return self.fail_with(400, 20001, "Invalid paging or DateSent parameter")
        if not 1 <= page_size <= 1000 or page < 0:
            return self.fail_with(400, 20001, "PageSize must be between 1 and 1000")
        with self._lock:
            self._settle()
            listed_before = time.time() - self.list_delay
            candidates = [
                m
                for m in reversed(self.messages.values())
                if self._created.get(m["sid"], 0.0) <= listed_before
            ]
        matching = [
            dict(m)
            for m in candidates
            if m["account_sid"] == account_sid
            and params.get("To", m["to"]) == m["to"]
            and params.get("From", m["from"]) == m["from"]
            and _sent_day_matches(m, days)
        ]
        start = _page_start(matching, params.get("PageToken"), page, page_size)
        items = matching[start : start + page_size]
        base = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        filters = [(name, params[name]) for name in _LIST_FILTERS if name in params]

        def page_uri(number: int, token: str | None = None) -> str:
            paging = [("PageSize", str(page_size)), ("Page", str(number))]
            if token:
                paging.append(("PageToken", token))
            return f"{base}?{urlencode(filters + paging)}"

        more = start + page_size < len(matching)
        return ScriptedResponse(
            200,
            {
                "end": start + max(len(items) - 1, 0),
                "first_page_uri": page_uri(0),
                "messages": items,
                "next_page_uri": page_uri(page + 1, "PA" + items[-1]["sid"]) if more else None,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": (
                    page_uri(page - 1, "PB" + items[0]["sid"]) if page > 0 and items else None
                ),
                "start": start,
                "uri": page_uri(page, params.get("PageToken")),
            },
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form_lists = parse_qs(body.decode(), keep_blank_values=True)
                request = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    form={k: v[0] for k, v in form_lists.items()},
                    basic_auth=_basic_auth(self.headers.get("Authorization")),
                    received_at=time.monotonic(),
                    form_lists=form_lists,
                    query=parse_qs(urlsplit(self.path).query, keep_blank_values=True),
                )
                fake._record(request)
                answer = fake._next_scripted() or fake._default_answer(request)
                if answer.accept:
                    fake._default_answer(request)
                time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                payload = json.dumps(answer.json_body).encode() if answer.json_body else b""
                headers = dict(answer.headers)
                if answer.json_body is not None:
                    headers["Content-Type"] = "application/json"
                headers["Content-Length"] = str(len(payload))
                if not answer.trickle:
                    self.send_response(answer.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    try:
                        self.end_headers()
                        self.wfile.write(payload)
                    except OSError:
                        self.close_connection = True  # the client gave up (a timeout test)
                    return
                self._trickle(answer, headers, payload)

            def _trickle(
                self, answer: ScriptedResponse, headers: dict[str, str], payload: bytes
            ) -> None:
                """The whole answer, status line included, one byte at a time, until done
                or the client hangs up."""
                reason = self.responses.get(answer.status, ("",))[0]
                head = f"HTTP/1.1 {answer.status} {reason}\r\n" + "".join(
                    f"{name}: {value}\r\n" for name, value in headers.items()
                )
                raw = (head + "Connection: close\r\n\r\n").encode() + payload
                self.close_connection = True
                try:
                    for index in range(len(raw)):
                        self.wfile.write(raw[index : index + 1])
                        self.wfile.flush()
                        time.sleep(answer.trickle)
                except OSError:
                    pass  # the client gave up: what a trickle is for

            do_GET = do_POST = do_DELETE = _serve

        return Handler


def _not_found(path: str) -> ScriptedResponse:
    return FakeTwilio.fail_with(404, 20404, f"The requested resource {path} was not found")


def _update(message: dict[str, Any], form: dict[str, str]) -> ScriptedResponse:
    """Redact (Body="") and/or cancel (Status=canceled) a stored message, in place."""
    if "Body" in form and form["Body"] != "":
        return FakeTwilio.fail_with(400, 20001, "Body can only be updated to an empty string")
    if "Status" in form:
        if form["Status"] != "canceled":
            return FakeTwilio.fail_with(400, 20001, "Status can only be updated to canceled")
        if message["status"] != "scheduled":
            return FakeTwilio.fail_with(400, 30409, "This message cannot be canceled")
        message["status"] = "canceled"
    if "Body" in form:
        message["body"] = ""
    message["date_updated"] = formatdate(usegmt=True)
    return ScriptedResponse(200, dict(message))


def _filter_day(value: str) -> date:
    """Twilio filters on the GMT day: take the date of `YYYY-MM-DD[THH:MM:SSZ]`."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").date()


def _sent_day_matches(message: dict[str, Any], days: dict[str, date]) -> bool:
    if not days:
        return True
    if not message.get("date_sent"):
        return False  # never sent: no DateSent filter matches it
    sent = parsedate_to_datetime(message["date_sent"]).astimezone(UTC).date()
    return (
        days.get("DateSent", sent) == sent
        and sent <= days.get("DateSent<", sent)
        and sent >= days.get("DateSent>", sent)
    )


def _page_start(matching: list[dict[str, Any]], token: str | None, page: int, size: int) -> int:
    """Where a page starts: after the `PA<sid>` token's message, before `PB<sid>`'s page,
    else at Page × PageSize (a token keeps paging stable while messages are created)."""
    sids = [m["sid"] for m in matching]
    if token and token[2:] in sids:
        position = sids.index(token[2:])
        return position + 1 if token.startswith("PA") else max(position - size, 0)
    return page * size


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _message_resource(
    account_sid: str, form: dict[str, str], media: list[str], status: str
) -> dict[str, Any]:
    """Shaped like the 201 example of Twilio's OpenAPI description (MM… SIDs carry media)."""
    sid = ("MM" if media else "SM") + uuid.uuid4().hex
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
        "num_media": str(len(media)),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"
        },
        "to": form.get("To"),
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }


def _with_sid(message: dict[str, Any], sid: str) -> dict[str, Any]:
    old = message["sid"]
    return {
        **message,
        "sid": sid,
        "uri": message["uri"].replace(old, sid),
        "subresource_uris": {
            k: v.replace(old, sid) for k, v in message["subresource_uris"].items()
        },
    }
