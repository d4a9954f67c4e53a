"""What the Twilio webhooks keep: which ones were applied (so a replay is a no-op), and
callbacks for messages we do not know."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.records import now_iso
from app.store.replication import NO_REPLICAS, Replication
from app.store.scripts import lua
from app.store.suppressions import suppression_value

_UNMATCHED_KEPT = 10_000

_CLAIM = lua("claim_webhook.lua")


@dataclass(frozen=True, slots=True)
class Webhook:
    """What identifies one webhook: Twilio's MessageSid and the status it reports (an
    inbound message: "received"), and I-Twilio-Idempotency-Token when it was sent. The
    SID and status are signed; the token header is not, so it only adds to them."""

    kind: Literal["status", "inbound"]
    sid: str
    status: str
    token: str | None = None

    def claim_keys(self) -> list[str]:
        found = [keys.webhook_seen(self.kind, self.sid, self.status)] if self.sid else []
        return found + ([keys.webhook_token(self.token)] if self.token else [])


@dataclass(frozen=True, slots=True)
class SuppressionChange:
    """A suppression list change a webhook makes: add (with its source) or remove."""

    number: str
    action: Literal["add", "remove"]
    source: str = ""
    keyword: str | None = None


@storage_errors
class CallbackLog:
    """Applied webhooks, remembered for the delivery retention; unmatched callbacks."""

    def __init__(
        self, redis: Redis, remember_s: int, replication: Replication = NO_REPLICAS
    ) -> None:
        self._redis = redis
        self._remember_s = remember_s
        self._replication = replication
        self._claim = redis.register_script(_CLAIM)

    async def apply_once(self, webhook: Webhook, change: SuppressionChange | None) -> bool:
        """Claim `webhook` and make `change`, atomically; False (nothing done) when it
        was already applied: a replay. An opt-out is answered once replicas have it
        (SMS_REDIS_MIN_REPLICAS; else `NotReplicated`, and Twilio retries the webhook)."""
        applied: int = await self._claim(
            keys=[keys.SUPPRESSIONS, *webhook.claim_keys()],
            args=[
                self._remember_s,
                change.action if change else "",
                change.number if change else "",
                suppression_value(change.source, change.keyword) if change else "",
            ],
        )
        if change is not None and change.action == "add":
            await self._replication.confirm(self._redis)
        return bool(applied)

    async def forget(self, webhook: Webhook) -> None:
        """Let Twilio's retry of `webhook` through again (its handling failed half-way)."""
        claim_keys = webhook.claim_keys()
        if claim_keys:
            await self._redis.delete(*claim_keys)

    async def keep_unmatched(self, form: Mapping[str, str]) -> None:
        """Keep a callback whose SID is not ours (or past retention), as received."""
        fields: dict[Any, Any] = {**form, "received_at": now_iso()}
        await self._redis.xadd(
            keys.UNMATCHED_CALLBACKS, fields, maxlen=_UNMATCHED_KEPT, approximate=True
        )
