"""SMS_REDIS_MIN_REPLICAS: a write that answers a promise waits until replicas have it.

Redis replicates asynchronously: a master that dies right after a write may take it with
it, and the replica promoted in its place never had it. `WAIT n timeout`, sent in the same
pipeline right after the writes (no extra round trip), returns once `n` replicas have
acknowledged everything this connection wrote, or when the time is up; fewer
acknowledgements mean the write may not survive a failover, and whoever asked is told so
(`NotReplicated`, a 503) instead of being promised it. With 0 (the default) nothing is
added to any pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.store import NotReplicated, keys
from app.store.pipelining import RedisCommand

__all__ = ["NO_REPLICAS", "Replication"]


@dataclass(frozen=True, slots=True)
class Replication:
    """How many replicas must confirm a write, and how long to wait for them."""

    min_replicas: int = 0
    timeout_ms: int = 1000

    def commands(self) -> list[RedisCommand]:
        """What to send after the writes, in their pipeline: nothing when no replica is
        required. WAIT covers this connection's writes up to its last one, so a write of
        its own goes first: a call that wrote nothing (an event answered `duplicate`) is
        then covered too, with every write the master made before it (the original's)."""
        if not self.min_replicas:
            return []
        return [
            ("SET", keys.REPLICATED_MARK, "1", "PX", 60_000),
            ("WAIT", self.min_replicas, self.timeout_ms),
        ]

    def check(self, replies: Sequence[Any]) -> None:
        """Raise `NotReplicated` unless WAIT's reply (the last of `replies`, when
        `commands` added any) counts enough replicas."""
        if not self.min_replicas:
            return
        acknowledged = replies[-1]
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.min_replicas:
            raise NotReplicated(
                f"written, but confirmed by {acknowledged} of the {self.min_replicas} "
                f"replica(s) SMS_REDIS_MIN_REPLICAS requires within {self.timeout_ms} ms: "
                "it might not survive a failover; retry (what was written is then answered "
                "as a duplicate, with its delivery id)"
            )

    async def confirm(self, redis: Redis) -> None:
        """After a write made on its own (an opt-out by API or webhook, off the hot path):
        wait for the replicas in a round trip of its own; nothing when none is required."""
        if not self.min_replicas:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for command in self.commands():
                pipe.execute_command(*command)
            self.check(await pipe.execute())


# The default: nothing waits for a replica (SMS_REDIS_MIN_REPLICAS=0).
NO_REPLICAS = Replication()
