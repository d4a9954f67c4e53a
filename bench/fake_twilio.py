"""A fast fake of Twilio's Messages API, for dispatch benchmarks (its own process).

`POST /2010-04-01/Accounts/{sid}/Messages.json` answers 201 with a minimal Message after a
configurable latency and records the arrival time (``time.time()``) of each request, keyed
by its `Body` form field. `GET /stats` gives the count (and with ``?times=1`` every arrival
time); `POST /reset?latency_ms=N` clears the record and sets the latency.

A plain ASGI callable, no framework, served by uvicorn with uvloop + httptools, so that it
is never the bottleneck: ``python -m bench.fake_twilio --port 8999``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PREFIX, _SUFFIX = "/2010-04-01/Accounts/", "/Messages.json"


class FakeTwilio:
    """The ASGI app and its record of arrivals."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.arrivals: dict[str, float] = {}
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path, method = scope["path"], scope["method"]
        body = await _read_body(receive)
        if method == "POST" and path.startswith(_PREFIX) and path.endswith(_SUFFIX):
            await self._create(path[len(_PREFIX) : -len(_SUFFIX)], body, send)
        elif method == "GET" and path == "/stats":
            await _respond(send, 200, self.stats(b"times=1" in scope["query_string"]))
        elif method == "POST" and path == "/reset":
            self.reset(parse_qs(scope["query_string"].decode()))
            await _respond(send, 200, {"reset": True, "latency_s": self.latency_s})
        else:
            await _respond(send, 404, {"code": 20404, "message": "not found", "status": 404})

    async def _create(self, account_sid: str, body: bytes, send: Send) -> None:
        arrived = time.time()
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.count += 1
        self.arrivals[form.get("Body", f"#{self.count}")] = arrived
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        message = {
            "sid": "SM" + secrets.token_hex(16),
            "account_sid": account_sid,
            "status": "queued",
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "num_segments": "1",
            "direction": "outbound-api",
        }
        await _respond(send, 201, message)

    def stats(self, with_times: bool) -> dict[str, Any]:
        """The count, first and last arrival, and optionally every arrival by Body."""
        times = self.arrivals.values()
        result: dict[str, Any] = {
            "count": self.count,
            "first": min(times, default=None),
            "last": max(times, default=None),
        }
        if with_times:
            result["arrivals"] = self.arrivals
        return result

    def reset(self, query: dict[str, list[str]]) -> None:
        """Forget every arrival; `latency_ms` (optional) sets the answer delay."""
        self.arrivals = {}
        self.count = 0
        if "latency_ms" in query:
            self.latency_s = float(query["latency_ms"][0]) / 1000


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    """Serve the fake on 127.0.0.1 with uvloop and httptools."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        FakeTwilio(args.latency_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
