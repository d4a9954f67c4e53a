"""Wiring: the app factory, the lifespan that owns every client, and the error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.api import (
    deliveries,
    destinations,
    health,
    ingest,
    messages,
    metrics,
    twilio_webhooks,
)
from app.api import (
    suppressions as suppressions_api,
)
from app.api.error_handlers import install_error_handlers
from app.api.ingest import IngestFastPath
from app.api.limits import BodyLimit
from app.api.openapi import install_contract
from app.console import install_console
from app.destinations import DestinationSet, load_destinations
from app.logs import RequestIdMiddleware
from app.pipeline.render import TemplateRenderer
from app.services import build_http_client, build_services
from app.settings import Settings
from app.store.storage import open_store

log = logging.getLogger(__name__)


def load_configured_destinations(settings: Settings) -> DestinationSet:
    """Read the destinations file with the configured templates folder (raises ConfigError)."""
    return load_destinations(settings.destinations_file, TemplateRenderer(settings.templates_dir))


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    """Build the API. Raises `ConfigError`/`SettingsError` at once for a bad configuration."""
    settings = settings or Settings()
    settings.check_serving()
    destination_set = load_configured_destinations(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_store(settings) as store, build_http_client(settings) as http:
            services = build_services(settings, http, store, destination_set)
            if settings.global_test_mode:
                log.warning("test mode: messages are mocked, nothing is sent to Twilio")
            worker = services.background_jobs() if run_worker else None
            log.debug(
                "services built: %d destination(s), send worker %s",
                len(destination_set),
                "in process" if worker else "elsewhere",
            )
            services.background = asyncio.create_task(worker.run()) if worker else None
            app.state.services = services

            async def drain() -> None:
                """SIGTERM: readiness red and new ingest refused at once; in-flight sends
                get SMS_SHUTDOWN_GRACE to finish (the send worker bounds itself)."""
                services.shutting_down = True
                if worker and services.background:
                    worker.stop()
                    await services.background

            app.state.drain = drain
            try:
                yield
            finally:
                if worker and services.background:
                    worker.stop()
                    await services.background

    app = FastAPI(
        title="smsdest",
        version="0.1.0",
        summary="Analytics events in, throttled SMS out through Twilio.",
        lifespan=lifespan,
    )
    for router in (
        ingest.router,
        destinations.router,
        deliveries.router,
        messages.router,
        suppressions_api.router,
        twilio_webhooks.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    install_console(app, settings)
    install_error_handlers(app)
    install_contract(app)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(IngestFastPath)  # before the body limit: the hot path reads its own body
    app.add_middleware(RequestIdMiddleware)  # outermost: ingest's fast path lines carry it too
    return app
