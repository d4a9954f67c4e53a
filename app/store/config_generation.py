"""The destinations file's generation: a counter every reload bumps, so that every process
of a deployment (each `serve`, on any host) notices a reload done elsewhere and reads the
file again."""

from __future__ import annotations

from redis.asyncio import Redis

from app.store import keys, storage_errors


@storage_errors
class ConfigGeneration:
    """One integer in Redis; 0 until the first reload."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def current(self) -> int:
        """The generation the deployment is at (one GET: cheap enough to poll)."""
        value: str | None = await self._redis.get(keys.CONFIG_GENERATION)  # type: ignore[assignment]
        return int(value) if value else 0

    async def bump(self) -> int:
        """Announce a reload to every process; the new generation."""
        generation: int = await self._redis.incr(keys.CONFIG_GENERATION)
        return generation
