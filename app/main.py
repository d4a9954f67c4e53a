"""Wiring: the app factory, the lifespan that owns every client, and the error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.api import (
    deliveries,
    destinations,
    health,
    ingest,
    messages,
    metrics,
    reload,
    replay,
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
from app.logs import RequestIdMiddleware
from app.services import Services, build_http_client, build_services
from app.services.reload import ReloadRefused, load_configured_destinations
from app.settings import Settings
from app.store.storage import open_store

log = logging.getLogger(__name__)


__all__ = ["create_app", "load_configured_destinations"]

# How often each process adds its count of events received to Redis (the console's figure
# lags by at most this much).
EVENT_TALLY_INTERVAL_S = 5.0


@contextlib.asynccontextmanager
async def following_reloads(services: Services) -> AsyncIterator[None]:
    """Reload the destinations on SIGHUP, and whenever another process reloaded them."""
    reloader = services.reloader
    if reloader is None:
        yield
        return
    await reloader.start()
    stopping = asyncio.Event()
    interval = services.settings.config_poll_interval
    follower = asyncio.create_task(reloader.follow(interval, stopping)) if interval else None
    pending: set[asyncio.Task[object]] = set()

    async def on_sighup() -> None:
        with contextlib.suppress(ReloadRefused):  # logged, and kept in last_error
            await reloader.reload()

    def hangup() -> None:
        task: asyncio.Task[object] = asyncio.create_task(on_sighup())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop = asyncio.get_running_loop()
    # Signals reach the main thread only (the tests run the app in another one).
    signals = threading.current_thread() is threading.main_thread()
    if signals:
        loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        yield
    finally:
        if signals:
            loop.remove_signal_handler(signal.SIGHUP)
        stopping.set()
        if follower:
            await follower


@contextlib.asynccontextmanager
async def counted_events(services: Services) -> AsyncIterator[None]:
    """Add this process's count of events received to the store every few seconds (and
    once more on the way out), for the console's overview."""
    tally = services.event_tally
    if tally is None:
        yield
        return
    stopping = asyncio.Event()
    flusher = asyncio.create_task(tally.run(EVENT_TALLY_INTERVAL_S, stopping))
    try:
        yield
    finally:
        stopping.set()
        await flusher


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
                async with following_reloads(services), counted_events(services):
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
        reload.router,  # before destinations': its path is a literal
        destinations.router,
        replay.router,  # before deliveries': its path is a literal
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
