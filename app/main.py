"""Wiring: the app factory, the lifespan that owns every client, and the error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from app.api import (
    deliveries,
    destinations,
    health,
    ingest,
    messages,
    twilio_webhooks,
)
from app.api import (
    suppressions as suppressions_api,
)
from app.api.errors import install_error_handlers
from app.api.ingest import IngestFastPath
from app.api.limits import BodyLimit
from app.api.openapi import install_contract
from app.destinations import DestinationSet, load_destinations
from app.ingest import IngestService
from app.messages import MessageService
from app.pipeline.dispatch import RetryPolicy
from app.pipeline.render import TemplateRenderer
from app.reconcile import Reconciler
from app.services import Services
from app.settings import Settings
from app.store.connection import EmbeddedRedis, connect
from app.store.deliveries import DeliveryLog
from app.store.suppressions import SuppressionList
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.transport import AiohttpTransport
from app.webhooks import TwilioWebhooks
from app.worker import SendWorker

log = logging.getLogger(__name__)


def load_configured_destinations(settings: Settings) -> DestinationSet:
    """Read the destinations file with the configured templates folder (raises ConfigError)."""
    return load_destinations(settings.destinations_file, TemplateRenderer(settings.templates_dir))


def build_twilio_client(settings: Settings, http: httpx.AsyncClient) -> TwilioClient:
    """The one Twilio client of a process (API and worker share it)."""
    credentials = TwilioCredentials.from_values(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_api_key,
        settings.twilio_api_secret,
    )
    callback = f"{settings.public_base_url}/v1/twilio/status" if settings.public_base_url else None
    return TwilioClient(http, credentials, settings.twilio_base_url, callback)


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client: httpx's API, aiohttp's pool (see twilio/transport.py)."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=settings.worker_concurrency + 4),
        timeout=httpx.Timeout(settings.twilio_timeout, connect=min(5.0, settings.twilio_timeout)),
        headers={"User-Agent": "smsdest/0.1"},
    )


class BackgroundJobs:
    """What a worker runs: the send worker, and reconciliation with Twilio when live."""

    def __init__(
        self, settings: Settings, redis: Redis, deliveries: DeliveryLog, twilio: TwilioClient
    ) -> None:
        self._worker = SendWorker(
            redis,
            deliveries,
            twilio,
            RetryPolicy(
                settings.send_max_attempts, settings.retry_base_delay, settings.retry_max_delay
            ),
            settings.worker_concurrency,
            settings.reclaim_idle,
        )
        reconcile = settings.reconcile_interval > 0 and not settings.global_test_mode
        self._reconciler = (
            Reconciler(
                redis, deliveries, twilio, settings.reconcile_after, settings.reconcile_max_pages
            )
            if reconcile
            else None
        )
        self._interval = settings.reconcile_interval
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        jobs = [self._worker.run()]
        if self._reconciler:
            jobs.append(self._reconciler.run_forever(self._interval, self._stopping))
        await asyncio.gather(*jobs)

    def stop(self) -> None:
        self._worker.stop()
        self._stopping.set()


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[tuple[Redis, httpx.AsyncClient]]:
    """Redis (configured or embedded) and the pooled HTTP client, closed in reverse order."""
    embedded = EmbeddedRedis.start(settings.data_dir) if settings.redis_url is None else None
    redis = connect(embedded.url if embedded else str(settings.redis_url))
    http = build_http_client(settings)
    try:
        yield redis, http
    finally:
        await http.aclose()
        await redis.aclose()
        if embedded:
            embedded.stop()


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    """Build the API. Raises `ConfigError`/`SettingsError` at once for a bad configuration."""
    settings = settings or Settings()
    settings.check_serving()
    destination_set = load_configured_destinations(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as (redis, http):
            twilio = build_twilio_client(settings, http)
            delivery_log = DeliveryLog(redis, settings.dedupe_ttl, settings.delivery_retention)
            suppressions = SuppressionList(redis)
            ingest_service = IngestService(
                destination_set,
                delivery_log,
                redis,
                twilio,
                settings.default_region,
                settings.global_test_mode,
                timedelta(seconds=settings.delivery_retention),
            )
            if settings.global_test_mode:
                log.warning("test mode: messages are mocked, nothing is sent to Twilio")
            worker = BackgroundJobs(settings, redis, delivery_log, twilio) if run_worker else None
            worker_task = asyncio.create_task(worker.run()) if worker else None
            app.state.services = Services(
                settings=settings,
                redis=redis,
                deliveries=delivery_log,
                ingest=ingest_service,
                suppressions=suppressions,
                messages=MessageService(
                    delivery_log, twilio, settings.global_test_mode, settings.delivery_retention
                ),
                webhooks=TwilioWebhooks(
                    redis, delivery_log, suppressions, ingest_service, settings.default_region
                ),
                background=worker_task,
            )
            try:
                yield
            finally:
                if worker and worker_task:
                    worker.stop()
                    await worker_task

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
    ):
        app.include_router(router)
    install_error_handlers(app)
    install_contract(app)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(IngestFastPath)  # outermost: the hot path reads its own body
    return app
