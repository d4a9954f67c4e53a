"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from app.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: ServicesDep) -> dict[str, str] | JSONResponse:
    """Ready when Redis answers: without it nothing can be accepted safely."""
    try:
        await services.redis.ping()
    except (RedisError, OSError) as exc:
        return JSONResponse(
            {"status": "unavailable", "detail": f"Redis: {type(exc).__name__}"}, status_code=503
        )
    return {"status": "ready"}
