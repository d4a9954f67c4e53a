"""What the Twilio webhooks keep: callbacks for messages we do not know."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.records import now_iso

_UNMATCHED_KEPT = 10_000


@storage_errors
class CallbackLog:
    """Status callbacks for unknown SIDs, kept for inspection (the last ~10,000)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def keep_unmatched(self, form: Mapping[str, str]) -> None:
        """Keep a callback whose SID is not ours (or past retention), as received."""
        fields: dict[Any, Any] = {**form, "received_at": now_iso()}
        await self._redis.xadd(
            keys.UNMATCHED_CALLBACKS, fields, maxlen=_UNMATCHED_KEPT, approximate=True
        )
