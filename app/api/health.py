"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: ServicesDep) -> dict[str, str] | JSONResponse:
    """Ready when Redis is fit and takes writes (nothing can be accepted safely without
    it: see `Store.problems`) and the in-process send worker, if any, is still running;
    red from SIGTERM on (the process is draining)."""
    if services.shutting_down:
        return JSONResponse(
            {"status": "unavailable", "detail": "shutting down"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    problems = await services.store.problems() if services.store is not None else []
    if problems:
        return JSONResponse(
            {"status": "unavailable", "detail": "; ".join(problems)},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    if services.background is not None and services.background.done():
        return JSONResponse(
            {"status": "unavailable", "detail": "the send worker has stopped; see the logs"},
            status_code=503,
        )
    return {"status": "ready"}
