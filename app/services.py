"""The services a request handler may use; built once per process by the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from app.ingest import IngestService
from app.messages import MessageService
from app.settings import Settings
from app.store.deliveries import DeliveryLog
from app.store.suppressions import SuppressionList
from app.webhooks import TwilioWebhooks


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    redis: Redis
    deliveries: DeliveryLog
    ingest: IngestService
    suppressions: SuppressionList
    messages: MessageService
    webhooks: TwilioWebhooks
    # The in-process send worker (None with `serve --no-worker`), watched by /readyz.
    background: asyncio.Task[None] | None = None
