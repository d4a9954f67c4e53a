"""Every domain and infrastructure error, mapped to an HTTP answer once.

FastAPI's routes use these through `install_error_handlers`; the ingest fast path
(`app.api.ingest.IngestFastPath`) through `error_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.errors import ERROR_BY_STATUS, InvalidInput, ServiceError
from app.store import NotReplicated, StorageError, StorageUnavailable
from app.twilio.errors import TwilioApiError, TwilioTransportError

log = logging.getLogger(__name__)


async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
        for err in exc.errors()
    ]
    return await service_error(request, InvalidInput(problems))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own answers in the one error shape: routing's 404 and 405, the 413 of
    `BodyLimit` raised inside body parsing, FastAPI's 400 for a body it cannot decode."""
    if exc.status_code == 400:
        # Only FastAPI's body parsing raises it ("There was an error parsing the body", e.g.
        # bytes that are not UTF-8): malformed input, answered as such.
        invalid = InvalidInput([{"field": "body", "problem": "not valid JSON (UTF-8)"}])
        return await service_error(request, invalid)
    detail: Any = exc.detail
    if exc.status_code == 404:
        detail = f"no such path: {request.url.path[:200]}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method[:20]} is not allowed on this path (allowed: {allowed})"
    error = ERROR_BY_STATUS.get(exc.status_code, ServiceError).error
    return JSONResponse(
        {"error": error, "detail": detail}, status_code=exc.status_code, headers=exc.headers
    )


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware sends this, then re-raises: the traceback is logged.
    return JSONResponse(
        {"error": "internal_error", "detail": "unexpected error; the service log has details"},
        status_code=500,
    )


async def twilio_error(_: Request, exc: TwilioApiError) -> JSONResponse:
    # Twilio's own words reach the caller; its 5xx are our 502 (a bad gateway).
    status = exc.http_status if 400 <= exc.http_status < 500 else 502
    detail = {
        "code": exc.code,
        "message": exc.message,
        "more_info": exc.more_info,
        "status": exc.http_status,
    }
    return JSONResponse({"error": "twilio_error", "detail": detail}, status_code=status)


async def twilio_unreachable(_: Request, exc: TwilioTransportError) -> JSONResponse:
    return JSONResponse({"error": "twilio_unreachable", "detail": exc.message}, status_code=502)


async def storage_failed(_: Request, exc: StorageError) -> JSONResponse:
    # Down, loading, read-only, out of memory…: the sender retries on 503; nothing was
    # acknowledged, so nothing is lost (/readyz says why, for the operator). Any other
    # refusal is a bug, logged with its trace, and still 503: a retry loses nothing.
    if isinstance(exc, StorageUnavailable):
        log.error("Redis unavailable: %s", exc)
    else:
        log.error("Redis refused a command", exc_info=exc)
    detail = "storage is unavailable, retry later"
    if isinstance(exc, NotReplicated):
        detail = f"storage is unavailable, retry later: {exc}"  # why, in words; no secret
    return JSONResponse(
        {"error": "unavailable", "detail": detail},
        status_code=503,
        headers={"Retry-After": "5"},
    )


# Every domain and infrastructure error, mapped to HTTP once (for FastAPI's routes and for
# the ingest fast path alike).
ERROR_HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    ServiceError: service_error,
    RequestValidationError: validation_error,
    HTTPException: http_error,
    TwilioApiError: twilio_error,
    TwilioTransportError: twilio_unreachable,
    StorageError: storage_failed,
}


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler of `ERROR_HANDLERS` with the app."""
    for error, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(error, handler)
    # Not in ERROR_HANDLERS: the ingest fast path re-raises what is unmapped, to be logged.
    app.add_exception_handler(Exception, unexpected_error)


async def error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """The answer for `exc` (or a base class of it), None when it is not a mapped error."""
    for kind in type(exc).__mro__:
        handler = ERROR_HANDLERS.get(kind)
        if handler is not None:
            return await handler(request, exc)
    return None
