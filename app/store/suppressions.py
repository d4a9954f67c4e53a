"""The suppression list: numbers that opted out (STOP) and must never be texted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.records import now_iso
from app.store.replication import NO_REPLICAS, Replication


@dataclass(frozen=True, slots=True)
class Suppression:
    number: str
    since: str
    source: str  # inbound | twilio_21610 | api | cli | console
    keyword: str | None = None

    def how(self) -> str:
        """How the number was suppressed, in words."""
        if self.source == "inbound":
            return f"by texting {self.keyword}" if self.keyword else "by an inbound message"
        if self.source == "twilio_21610":
            return "according to Twilio (error 21610: unsubscribed recipient)"
        if self.source == "api":
            return "through the API"
        if self.source == "cli":
            return "with the command line"
        if self.source == "console":
            return "in the console"
        return f"({self.source})"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "since": self.since,
            "source": self.source,
            "keyword": self.keyword,
        }


def suppression_value(source: str, keyword: str | None = None) -> bytes:
    """What the suppression list stores for a number suppressed now by `source`."""
    return orjson.dumps({"since": now_iso(), "source": source, "keyword": keyword})


@storage_errors
class SuppressionList:
    """One Redis hash; admission and the worker check it inside their Lua scripts."""

    def __init__(self, redis: Redis, replication: Replication = NO_REPLICAS) -> None:
        self._redis = redis
        self._replication = replication

    async def add(self, number: str, source: str, keyword: str | None = None) -> bool:
        """Suppress `number`; False when it already was (the first record is kept). With
        SMS_REDIS_MIN_REPLICAS, answered once replicas have it (else `NotReplicated`)."""
        added: int = await self._redis.hsetnx(
            keys.SUPPRESSIONS, number, suppression_value(source, keyword)
        )
        await self._replication.confirm(self._redis)
        return bool(added)

    async def remove(self, number: str) -> bool:
        """Lift the suppression; False when the number was not suppressed."""
        removed: int = await self._redis.hdel(keys.SUPPRESSIONS, number)
        return bool(removed)

    async def get(self, number: str) -> Suppression | None:
        raw: str | None = await self._redis.hget(keys.SUPPRESSIONS, number)  # type: ignore[assignment]
        return parse_suppression(number, raw) if raw else None

    async def page(self, cursor: int, limit: int) -> tuple[list[Suppression], int]:
        """A page of the list (HSCAN order) and the cursor for the next one (0 = done)."""
        reply: Any = await self._redis.hscan(keys.SUPPRESSIONS, cursor, count=limit)
        next_cursor, entries = reply
        return [parse_suppression(n, raw) for n, raw in entries.items()], int(next_cursor)

    async def search(self, digits: str, limit: int) -> list[Suppression]:
        """Numbers containing the digits of `digits`, at most `limit`, from a bounded scan."""
        # Digits only: nothing reaches HSCAN's glob pattern that it would interpret.
        digits = "".join(c for c in digits if c.isdigit())
        found: list[Suppression] = []
        cursor = 0
        for _ in range(_SEARCH_SCANS):
            reply: Any = await self._redis.hscan(
                keys.SUPPRESSIONS, cursor, match=f"*{digits}*", count=1000
            )
            cursor, entries = int(reply[0]), reply[1]
            found += [parse_suppression(n, raw) for n, raw in entries.items()]
            if cursor == 0 or len(found) >= limit:
                break
        return found[:limit]


# A search reads at most this many HSCAN pages (~1,000 numbers each): a bounded cost.
_SEARCH_SCANS = 100


def parse_suppression(number: str, raw: str) -> Suppression:
    """A suppression as stored (the list's JSON value for `number`)."""
    data = orjson.loads(raw)
    return Suppression(number, data.get("since", ""), data.get("source", ""), data.get("keyword"))
