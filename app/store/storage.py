"""A process's door to Redis: every store object over one connection pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from app.settings import Settings
from app.store import StorageError, storage_errors
from app.store.callbacks import CallbackLog
from app.store.config_generation import ConfigGeneration
from app.store.connection import EmbeddedRedis, check_server, close, connect, refuse_unfit
from app.store.deliveries import DeliveryLog
from app.store.guard import PumpingBackoffs
from app.store.pacing import SenderPacing
from app.store.pauses import PauseBook
from app.store.queue import SendQueue
from app.store.queue_stats import QueueStats
from app.store.reconcile_state import ReconcileState
from app.store.replays import ReplayLog
from app.store.replication import NO_REPLICAS, Replication
from app.store.stats import DeliveryStats, EventCounts
from app.store.suppressions import SuppressionList


@storage_errors
class Store:
    """The store objects services are given; built once per process by `open_store`."""

    def __init__(
        self,
        redis: Redis,
        dedupe_ttl_s: int,
        retention_s: int,
        skipped_retention_s: int | None = None,
        replication: Replication = NO_REPLICAS,
        pause_recheck_s: float = 300.0,
    ) -> None:
        self._redis = redis
        self._replication = replication
        self.pauses = PauseBook(redis, pause_recheck_s)
        self.deliveries = DeliveryLog(
            redis, dedupe_ttl_s, retention_s, skipped_retention_s, replication
        )
        self.suppressions = SuppressionList(redis, replication)
        self.callbacks = CallbackLog(redis, retention_s, replication)
        self.reconcile = ReconcileState(redis)
        self.config_generation = ConfigGeneration(redis)
        self.replays = ReplayLog(redis, retention_s)
        self.stats = DeliveryStats(redis)
        self.event_counts = EventCounts(redis)
        self.queue_stats = QueueStats(redis)
        self.pacing = SenderPacing(redis)
        self.pumping = PumpingBackoffs(redis)

    def send_queue(self, consumer: str) -> SendQueue:
        """The send stream, read as `consumer` (one per worker)."""
        return SendQueue(self._redis, consumer)

    async def problems(self) -> list[str]:
        """What makes this Redis unfit to take the service's writes right now, each saying
        what to change; empty when it is fit. Never raises (see `check_server`)."""
        found = await check_server(self._redis, self._replication.min_replicas)
        return [problem.text for problem in found]


async def refuse_unfit_redis(settings: Settings) -> None:
    """Raise `RedisUnfit` when SMS_REDIS_URL is the wrong Redis (see `refuse_unfit`)."""
    redis = connect(str(settings.redis_url), max_connections=1)
    try:
        await refuse_unfit(redis, settings.redis_min_replicas)
    finally:
        await close(redis)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The configured Redis (SMS_REDIS_URL), or an embedded one under SMS_DATA_DIR; closed
    (and the embedded server stopped) on the way out."""
    embedded = EmbeddedRedis.start(settings.data_dir) if settings.redis_url is None else None
    redis = connect(embedded.url if embedded else str(settings.redis_url))
    replication = Replication(settings.redis_min_replicas, settings.redis_wait_timeout)
    try:
        # Cluster, evicting, a replica: say what to change, stop.
        await refuse_unfit(redis, replication.min_replicas)
        store = Store(
            redis,
            settings.dedupe_ttl,
            settings.delivery_retention,
            settings.skipped_retention,
            replication,
            pause_recheck_s=settings.pause_recheck,
        )
        # A Redis away at start-up is not fatal: the worker's pruning migrates too.
        with contextlib.suppress(StorageError):
            await store.deliveries.migrate()
        yield store
    finally:
        await close(redis)
        if embedded:
            embedded.stop()
