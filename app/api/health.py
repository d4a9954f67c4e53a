"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.store import StorageError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: ServicesDep) -> dict[str, str] | JSONResponse:
    """Ready when Redis answers (nothing can be accepted safely without it) and the
    in-process send worker, if any, is still running."""
    try:
        if services.store is not None:
            await services.store.ping()
    except StorageError as exc:
        return JSONResponse(
            {"status": "unavailable", "detail": f"Redis: {type(exc).__name__}"}, status_code=503
        )
    if services.background is not None and services.background.done():
        return JSONResponse(
            {"status": "unavailable", "detail": "the send worker has stopped; see the logs"},
            status_code=503,
        )
    return {"status": "ready"}
