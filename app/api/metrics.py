"""GET /metrics: Prometheus' text format, behind SMS_METRICS_TOKEN when it is set."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request, Response

from app.api import health
from app.api.deps import ServicesDep, check_bearer
from app.api.error_handlers import install_error_handlers
from app.metrics import CONTENT_TYPE
from app.services import Services
from app.store import StorageError
from app.store.queue_stats import QueueSnapshot

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"},
        401: {"description": "SMS_METRICS_TOKEN is set and the request does not carry it"},
    },
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Counters and histograms of this process (of every process with
    PROMETHEUS_MULTIPROC_DIR), then the queue's gauges, read from Redis now
    (`smsdest_redis_up` 0 and no queue gauges when Redis fails)."""
    token = services.settings.metrics_token
    if token is not None:
        check_bearer(request, token.get_secret_value(), "SMS_METRICS_TOKEN")
    queue: QueueSnapshot | StorageError | None = None
    if services.store is not None:
        try:
            queue = await services.store.queue_stats.snapshot()
        except StorageError as exc:
            # The counters matter most while Redis is down: answer them, without the queue.
            log.warning("metrics: the queue gauges are left out, Redis failed: %s", exc)
            queue = exc
    return Response(services.metrics.exposition(queue), media_type=CONTENT_TYPE)


def worker_metrics_app(services: Services) -> FastAPI:
    """What `smsdest worker` serves on SMS_METRICS_PORT: this router (same token, same
    error answers) and the health probes, over the worker's own services."""
    app = FastAPI(title="smsdest worker", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    app.include_router(health.router)
    install_error_handlers(app)
    app.state.services = services
    return app
