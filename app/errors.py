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


class Conflict(ServiceError):
    status_code = 409
    error = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error = "payload_too_large"


class InvalidInput(ServiceError):
    """422 with a list of ``{"field": …, "problem": …}``."""

    status_code = 422
    error = "invalid_input"

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(problems)


class Unavailable(ServiceError):
    status_code = 503
    error = "unavailable"
