"""Logs: one JSON object per line (or readable text), every line of a request carrying its
request id.

The standard library's logging with a small formatter, not structlog or python-json-logger:
every library we run (uvicorn, asyncio, redis-py, httpx) already logs through it, so one
root handler formats all of their lines the same way; structured fields travel in
`extra=`; orjson, already a dependency, writes the JSON.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import re
import sys
import time
from typing import Any, Literal

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["json", "text"]

REQUEST_ID_HEADER = "x-request-id"
# Taken from the caller only when it looks like an id: bounded, no spaces or control
# characters (it is echoed in a header and written in every line of the request).
_CALLER_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=` and is a field
# (but uvicorn's `color_message`: the same message with terminal colour codes).
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request id (when in a request) and the record's `extra=` fields."""
    attrs = record.__dict__
    rid = request_id.get()
    fields: dict[str, Any] = {} if rid is None else {"request_id": rid}
    for key, value in attrs.items():
        if key not in _RECORD_ATTRS:
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", ...fields}` on one line.

    Kept cheap: the hot path writes one line per decision (measured in the git log)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return f"{head} [{pairs}]{newline}{rest}"


@functools.lru_cache(maxsize=2)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _iso(created: float) -> str:
    seconds = int(created)
    return f"{_iso_second(seconds)}.{int((created - seconds) * 1000):03d}Z"


def resolve_format(configured: LogFormat | None) -> LogFormat:
    """SMS_LOG_FORMAT, else text at a terminal and JSON everywhere else."""
    if configured is not None:
        return configured
    return "text" if sys.stderr.isatty() else "json"


def configure_logging(level: str, log_format: LogFormat | None = None) -> None:
    """One stderr handler on the root logger, for this project's and every library's lines."""
    # Neither format shows threads, processes or source lines: skip collecting them for
    # every record (the switches the logging HOWTO lists under "Optimization"; the hot path
    # writes a line per decision).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if resolve_format(log_format) == "json" else TextFormatter()
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class RequestIdMiddleware:
    """ASGI middleware: the request's id — the caller's `X-Request-ID` when it looks like
    one, else a new one — set for every log line of the request and echoed in the
    response's `X-Request-ID` header."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                rid = text if _CALLER_ID.fullmatch(text) else None
                break
        # Not a secret: no urandom syscall per request (as delivery ids).
        rid = rid or f"{random.getrandbits(64):016x}"
        header = (b"x-request-id", rid.encode())
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
