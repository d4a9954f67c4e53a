"""Hostile and odd input at the HTTP edge: malformed paths and queries are 422s naming the
parameter, bodies are bounded before they are read, every error has one shape."""

from __future__ import annotations

import asyncio
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterable

import httpx
import orjson
import pytest
from fastapi import FastAPI

from app.api.error_handlers import install_error_handlers
from app.bodies import MessageCreate
from app.errors import MAX_LISTED_PROBLEMS, InvalidInput
from tests.conftest import RunningService
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]
NO_DESTINATIONS = "destinations: []\n"
SID = "SM" + "ab" * 16


def error_of(response: object) -> tuple[int, str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "detail"}, body
    return response.status_code, body["error"], body["detail"]  # type: ignore[attr-defined]


def fields(detail: object) -> list[str]:
    assert isinstance(detail, list)
    return [problem["field"] for problem in detail]


def test_a_newline_in_a_sid_is_422_naming_it(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        for method, path, field in [
            ("GET", f"/v1/messages/{SID}%0A", "path.sid"),
            ("POST", f"/v1/messages/{SID}%0A/cancel", "path.reference"),
            ("POST", f"/v1/messages/dl_{'0' * 28}%0A/cancel", "path.reference"),
            ("POST", f"/v1/messages/{SID}%0A/redact", "path.sid"),
            ("DELETE", f"/v1/messages/{SID}%0A", "path.sid"),
            ("GET", f"/v1/deliveries/dl_{'0' * 28}%0A", "path.delivery_id"),
            ("POST", "/v1/destinations/x%0A/test", "path.destination_id"),
        ]:
            response = admin.request(method, path, json={"event": {}})
            status, error, detail = error_of(response)
            assert (status, error) == (422, "invalid_input"), (path, response.text)
            assert fields(detail) == [field], path
    assert fake_twilio.requests == []


def test_malformed_queries_are_422_naming_the_parameter(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(NO_DESTINATIONS)
    page = f"/2010-04-01/Accounts/AC{'a1' * 16}/Messages.json?Page=1"
    with service.admin() as admin:
        for path, params, field in [
            ("/v1/suppressions", {"cursor": str(10**30)}, "query.cursor"),
            ("/v1/suppressions", {"cursor": "-1"}, "query.cursor"),
            ("/v1/suppressions", {"cursor": "1e3"}, "query.cursor"),
            ("/v1/deliveries", {"status": "nope"}, "query.status"),
            ("/v1/deliveries", {"destination": "a\nb"}, "query.destination"),
            ("/v1/deliveries", {"recipient": "x" * 300}, "query.recipient"),
            ("/v1/deliveries", {"limit": "0"}, "query.limit"),
            ("/v1/messages", {"cursor": page + "\n"}, "query.cursor"),
            ("/v1/messages", {"cursor": page + "&x=\x01"}, "query.cursor"),
            ("/v1/messages", {"date_sent": "2026-13-01"}, "query.date_sent"),
        ]:
            status, error, detail = error_of(admin.get(path, params=params))
            assert (status, error, fields(detail)) == (422, "invalid_input", [field]), params
        # The largest cursor Redis takes is fine (an empty page).
        assert admin.get("/v1/suppressions", params={"cursor": str(2**64 - 1)}).status_code == 200
    assert fake_twilio.requests == []


def test_routing_and_body_parsing_errors_have_the_one_shape(start_service: Start) -> None:
    service = start_service(NO_DESTINATIONS)
    with service.admin() as admin:
        status, error, detail = error_of(admin.get("/v1/nowhere"))
        assert (status, error) == (404, "not_found") and "/v1/nowhere" in str(detail)
        response = admin.put("/v1/suppressions", json={})
        status, error, detail = error_of(response)
        assert (status, error) == (405, "method_not_allowed")
        assert response.headers["allow"] and "GET" in str(detail)
        status, error, _ = error_of(admin.get("/v1/events"))
        assert (status, error) == (405, "method_not_allowed")
        undecodable = admin.post(
            "/v1/messages", content=b"\xff\xfe{}", headers={"Content-Type": "application/json"}
        )
        status, error, detail = error_of(undecodable)
        assert (status, error) == (422, "invalid_input")
        assert fields(detail)[0].startswith("body")
        # Bytes Python's JSON decoder cannot even decode: FastAPI's 400, answered as 422.
        for path in ("/v1/messages", "/v1/destinations/x/test", "/v1/suppressions"):
            garbled = admin.post(
                path, content=b"S\xff?\xfe", headers={"Content-Type": "application/json"}
            )
            status, error, detail = error_of(garbled)
            assert (status, error, fields(detail)) == (422, "invalid_input", ["body"]), path
        not_json = admin.post(
            "/v1/suppressions", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert error_of(not_json)[:2] == (422, "invalid_input")
    with service.client(token=None) as anonymous:
        assert error_of(anonymous.get("/v1/deliveries"))[:2] == (401, "unauthorized")


def test_a_100000_key_object_is_one_small_422(start_service: Start) -> None:
    service = start_service(NO_DESTINATIONS)
    wide = orjson.dumps({format(i, "x"): 0 for i in range(100_000)})
    with service.admin() as admin:
        for path in ("/v1/messages", "/v1/suppressions", "/v1/destinations/x/test"):
            response = admin.post(path, content=wide, headers={"Content-Type": "application/json"})
            status, error, detail = error_of(response)
            assert (status, error, fields(detail)) == (422, "invalid_input", ["body"]), path
            assert "100000 unknown fields" in str(detail)
            assert len(response.content) < 1000, path
        few = admin.post("/v1/suppressions", json={"number": "+14155552671", "numbr": 1})
        assert fields(error_of(few)[2]) == ["body.numbr"]  # a few are named one by one


def test_unknown_fields_cost_one_error_not_one_each() -> None:
    wide = orjson.loads(orjson.dumps({format(i, "x"): 0 for i in range(100_000)}))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="100000 unknown fields"):
            MessageCreate.model_validate(wide)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 100,000 separate "extra_forbidden" errors took 89 MB (and 2.7 s).
    assert peak < 5_000_000


def test_an_unexpected_error_is_a_500_in_the_one_shape() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/boom")

    response = asyncio.run(get())
    assert error_of(response)[:2] == (500, "internal_error")
    assert "a bug" not in response.text


def test_listed_problems_are_capped() -> None:
    problems = [{"field": f"f{i}", "problem": "bad"} for i in range(100_000)]
    detail = InvalidInput(problems).to_json()["detail"]
    assert len(detail) == MAX_LISTED_PROBLEMS + 1
    assert detail[-1] == {
        "field": "…",
        "problem": f"{100_000 - MAX_LISTED_PROBLEMS} more problems not listed",
    }


def raw_request(service: RunningService, head: bytes, body: Iterable[bytes] = ()) -> bytes:
    """Send a request by hand (a declared length we do not send, a chunked stream) and
    return the response's bytes."""
    host, port = service.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and stopped reading: what we want to see
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_twilio_webhooks_refuse_a_large_body_before_reading_it(start_service: Start) -> None:
    service = start_service(NO_DESTINATIONS)
    started = time.monotonic()
    # 40 MB declared, nothing sent: the answer cannot wait for the body.
    answer = raw_request(
        service,
        b"POST /v1/twilio/inbound HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"payload_too_large"' in answer and b"65536" in answer
    assert time.monotonic() - started < 5
    # Chunked, no length declared: refused once 64 KiB have arrived.
    chunks = (b"%x\r\n%s\r\n" % (8192, b"x" * 8192) for _ in range(1000))
    answer = raw_request(
        service,
        b"POST /v1/twilio/status HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_every_route_has_a_body_limit(start_service: Start) -> None:
    service = start_service(NO_DESTINATIONS, max_body_bytes=2048)
    with service.admin() as admin:
        response = admin.post("/v1/messages", json={"body": "x" * 4096})
        assert error_of(response)[:2] == (413, "payload_too_large")
    chunks = (b"%x\r\n%s\r\n" % (1024, b" " * 1024) for _ in range(8))
    answer = raw_request(
        service,
        b"POST /v1/suppressions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + service.settings.admin_token.get_secret_value().encode()  # type: ignore[union-attr]
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"error":"payload_too_large"' in answer
