"""Request body limits for every route but the ingest fast path (which reads its own body,
see `app.api.ingest.read_json_body`): a body over its limit is refused before it is read
(declared length) or as soon as it is (streamed), never buffered whole.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge

# Twilio's webhooks are form posts of a few KB: the largest, an inbound message of 1,600
# characters each percent-encoded from 3 UTF-8 bytes, is ~15 KB with every other field.
# Anyone can POST to these URLs, and the signature is only checked once the body is read.
TWILIO_WEBHOOK_PREFIX = "/v1/twilio/"
TWILIO_WEBHOOK_MAX_BYTES = 64 * 1024


def too_large(limit: int, declared: int | None = None) -> PayloadTooLarge:
    """The 413 for a body over `limit` (of `declared` bytes, when it said so)."""
    size = f"body of {declared} bytes" if declared is not None else "body"
    return PayloadTooLarge(f"{size} is over the limit of {limit} bytes")


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, None when absent (the server checked its syntax)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: `SMS_MAX_BODY_BYTES` for every body, `TWILIO_WEBHOOK_MAX_BYTES`
    for Twilio's webhooks."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = (
            TWILIO_WEBHOOK_MAX_BYTES
            if scope["path"].startswith(TWILIO_WEBHOOK_PREFIX)
            else self._max_body_bytes
        )
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            error = too_large(limit, declared)
            # Unread: the server discards the body as it arrives (nothing is kept) and the
            # client, still sending, gets this answer (closing now would reset the
            # connection under it).
            response = JSONResponse(error.to_json(), status_code=error.status_code)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI re-raises it from body parsing (any other
                    # error there becomes its 400), and the error handlers shape it.
                    raise HTTPException(413, too_large(limit).detail)
            return message

        await self._app(scope, limited_receive, send)
