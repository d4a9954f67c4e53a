"""The service objects of a process, built in one place (`build_services`) for the API's
lifespan and for the command line alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import httpx

from app.destinations import DestinationSet
from app.errors import Unavailable
from app.metrics import Metrics
from app.pipeline.dispatch import RetryPolicy
from app.services.event_tally import EventTally
from app.services.ingest import IngestService
from app.services.messages import MessageService
from app.services.pacing import SenderPacer
from app.services.pauses import DestinationPauses
from app.services.recent import RecentEvents
from app.services.reconcile import Reconciler
from app.services.reload import DestinationReloader
from app.services.replay import ReplayService
from app.services.system_events import SystemEvents
from app.services.webhooks import WebhookService
from app.services.worker import SendWorker, consumer_name, message_of
from app.settings import Settings
from app.sms.provider import Provider
from app.store.deliveries import DeliveryLog
from app.store.records import DeliveryRecord
from app.store.storage import Store
from app.store.suppressions import SuppressionList
from app.transport import AiohttpTransport
from app.twilio.provider import build_twilio_provider  # the one provider there is, so far


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client: httpx's API, aiohttp's pool (see app/transport.py)."""
    timeout = settings.twilio_timeout  # a provider's request deadline
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=settings.worker_concurrency + 4),
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        headers={"User-Agent": "smsdest/0.1"},
    )


class BackgroundJobs:
    """What a worker runs: the send worker, and reconciliation with the provider when live."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        metrics: Metrics,
        pacer: SenderPacer | None = None,
        pauses: DestinationPauses | None = None,
    ) -> None:
        self._worker = SendWorker(
            store.send_queue(consumer_name()),
            store.deliveries,
            provider,
            RetryPolicy(
                settings.send_max_attempts, settings.retry_base_delay, settings.retry_max_delay
            ),
            settings.worker_concurrency,
            settings.reclaim_idle,
            metrics,
            settings.shutdown_grace,
            pacer=pacer or SenderPacer(store.pacing, metrics, settings.sender_default_rate),
            pace_hold_s=settings.pacing_hold_s,
            pumping=store.pumping,
            pauses=store.pauses,
            announce_pause=pauses.announce if pauses else None,
        )
        reconcile = settings.reconcile_interval > 0 and not settings.global_test_mode
        self._reconciler = (
            Reconciler(
                store.reconcile,
                store.deliveries,
                provider,
                settings.reconcile_after,
                settings.reconcile_max_pages,
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


@dataclass(slots=True)
class Services:
    """What request handlers and commands use. Commands that only talk to the provider run
    without Redis (`store` None): asking them for anything stored raises `Unavailable`."""

    settings: Settings
    provider: Provider
    messages: MessageService
    metrics: Metrics
    store: Store | None = None
    ingest_service: IngestService | None = None
    webhook_service: WebhookService | None = None
    reloader: DestinationReloader | None = None  # its `last_error`: the last refused reload
    replay_service: ReplayService | None = None
    system_event_service: SystemEvents | None = None
    # Sender pacing of this process (the worker's reservations, the webhooks' cuts).
    pacer: SenderPacer | None = None
    pause_service: DestinationPauses | None = None
    event_tally: EventTally | None = None  # flushed by `serve` (counted_events)
    # The in-process send worker (None with `serve --no-worker`), watched by /readyz.
    background: asyncio.Task[None] | None = None
    # Set on SIGTERM: /readyz turns red and new ingest is refused while in-flight work ends.
    shutting_down: bool = False

    @property
    def ingest(self) -> IngestService:
        return _needed(self.ingest_service)

    @property
    def webhooks(self) -> WebhookService:
        return _needed(self.webhook_service)

    @property
    def replay(self) -> ReplayService:
        return _needed(self.replay_service)

    @property
    def system_events(self) -> SystemEvents:
        return _needed(self.system_event_service)

    @property
    def pauses(self) -> DestinationPauses:
        return _needed(self.pause_service)

    @property
    def deliveries(self) -> DeliveryLog:
        return _needed(self.store).deliveries

    @property
    def suppressions(self) -> SuppressionList:
        return _needed(self.store).suppressions

    def mocked_request(self, record: DeliveryRecord) -> dict[str, object] | None:
        """The provider's request (credentials redacted) a mocked send stood for, rebuilt
        from its record: test mode does not store it (a lean record, issue 11)."""
        if record.provider_status != "mocked":
            return None
        return self.provider.preview(message_of(record))

    def background_jobs(self) -> BackgroundJobs:
        """The send worker (and reconciliation), for `serve` and `smsdest worker`."""
        return BackgroundJobs(
            self.settings,
            _needed(self.store),
            self.provider,
            self.metrics,
            pacer=self.pacer,
            pauses=self.pause_service,
        )


_T = TypeVar("_T")


def _needed(service: _T | None) -> _T:
    if service is None:
        raise Unavailable("this process runs without Redis (SMS_REDIS_URL)")
    return service


def build_services(
    settings: Settings,
    http: httpx.AsyncClient,
    store: Store | None,
    destinations: DestinationSet | None = None,
) -> Services:
    """Every service of a process over one HTTP client and, unless None, one store
    (commands that only talk to the provider need no Redis). `destinations`: what ingest matches
    events against (none for commands that never ingest)."""
    provider = build_twilio_provider(settings, http)
    metrics = Metrics()
    messages = MessageService(
        store.deliveries if store else None,
        provider,
        settings.global_test_mode,
        settings.delivery_retention,
        metrics,
    )
    if store is None:
        return Services(settings, provider, messages, metrics)
    tally = EventTally(store.event_counts)
    ingest = IngestService(
        destinations or DestinationSet([]),
        store.deliveries,
        provider,
        settings.default_region,
        settings.global_test_mode,
        timedelta(seconds=settings.delivery_retention),
        metrics,
        RecentEvents(settings.recent_events) if settings.recent_events else None,
        tally,
    )
    pacer = SenderPacer(store.pacing, metrics, settings.sender_default_rate)
    webhooks = WebhookService(
        provider,
        store.callbacks,
        store.deliveries,
        ingest,
        settings.default_region,
        pumping=store.pumping,
        pacer=pacer,
    )
    reloader = DestinationReloader(settings, ingest, store.config_generation, store.pacing)
    replay = ReplayService(store.deliveries, store.replays, ingest)
    system_events = SystemEvents(ingest)
    ingest.on_guard_tripped(system_events.guard_tripped)
    pauses = DestinationPauses(store.pauses, ingest, system_events)
    ingest.on_over_budget = pauses.after_admission
    return Services(
        settings,
        provider,
        messages,
        metrics,
        store,
        ingest,
        webhooks,
        reloader=reloader,
        replay_service=replay,
        system_event_service=system_events,
        pacer=pacer,
        pause_service=pauses,
        event_tally=tally,
    )
