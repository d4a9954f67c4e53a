"""Request dependencies: the process's services, and the two bearer-token checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.errors import Unauthorized
from app.services import Services


def services_of(request: Request) -> Services:
    """The process's services, built by the lifespan."""
    services: Services = request.app.state.services
    return services


# async: FastAPI runs a plain `def` dependency in its threadpool, per request.
async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def check_bearer(request: Request, expected: str | None, what: str) -> None:
    """Raise `Unauthorized` unless the request carries `Bearer <expected>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(f"missing bearer token: send 'Authorization: Bearer <{what}>'")
    # Constant-time comparison: response timing must not reveal the token prefix.
    if expected is None or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized(f"invalid {what}")


def check_ingest_token(request: Request, services: Services) -> None:
    """Raise `Unauthorized` unless the request carries SMS_INGEST_TOKEN (or auth is off)."""
    settings = services.settings
    if settings.ingest_auth == "bearer":
        token = settings.ingest_token.get_secret_value() if settings.ingest_token else None
        check_bearer(request, token, "SMS_INGEST_TOKEN")


async def require_admin_token(request: Request, services: ServicesDep) -> None:
    settings = services.settings
    if settings.admin_auth == "bearer":
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        check_bearer(request, token, "SMS_ADMIN_TOKEN")
