"""Errors that cross the HTTP boundary: each carries its status, rendered by one handler."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base class: `status_code` and a stable `error` code; `detail` says what went wrong."""

    status_code = 500
    error = "internal_error"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}


class BadRequest(ServiceError):
    status_code = 400
    error = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    error = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403
    error = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    error = "not_found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    error = "method_not_allowed"


class Conflict(ServiceError):
    status_code = 409
    error = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    error = "unsupported_media_type"


# A 100,000-key object would otherwise be answered with 100,000 problems (6.4 MB): the
# first ones say what is wrong, a last entry says how many more there were.
MAX_LISTED_PROBLEMS = 20


class InvalidInput(ServiceError):
    """422 with a list of ``{"field": …, "problem": …}`` (at most `MAX_LISTED_PROBLEMS`,
    then one ``{"field": "…", "problem": "N more problems not listed"}``)."""

    status_code = 422
    error = "invalid_input"

    def __init__(self, problems: list[dict[str, str]]) -> None:
        if len(problems) > MAX_LISTED_PROBLEMS:
            more = len(problems) - MAX_LISTED_PROBLEMS
            problems = [
                *problems[:MAX_LISTED_PROBLEMS],
                {"field": "…", "problem": f"{more} more problems not listed"},
            ]
        super().__init__(problems)


class Unavailable(ServiceError):
    status_code = 503
    error = "unavailable"


# The error code of each status, for answers not raised as a `ServiceError` (routing's 404
# and 405, a body over its limit caught inside FastAPI's body parsing).
ERROR_BY_STATUS: dict[int, type[ServiceError]] = {
    kind.status_code: kind
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidInput,
        Unavailable,
    )
}
