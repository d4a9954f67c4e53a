"""Counting what the ingest path asks of Redis.

Two views: `INFO` counters around a load run (every command Redis executed, including
the ones a Lua script runs inside Redis), and `MONITOR` over a short calibration, which
tells the commands clients sent (a round trip each, unless pipelined) from the ones Lua ran.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass

import redis

_MONITOR_LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?')
# Commands whose first argument is a subcommand worth telling apart (SCRIPT EXISTS, …).
_CONTAINERS = frozenset({"script", "xgroup", "xinfo", "client", "config", "function"})


@dataclass(frozen=True)
class CommandCounts:
    """INFO counters at one moment."""

    total: int
    calls: dict[str, int]  # by command name (commandstats)

    @classmethod
    def read(cls, client: redis.Redis) -> CommandCounts:
        stats = client.info("stats")
        commands = client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): v["calls"] for name, v in commands.items()}
        return cls(int(stats["total_commands_processed"]), calls)

    def since(self, before: CommandCounts) -> CommandCounts:
        """The difference, without the INFO commands this module sent."""
        calls = {
            name: n - before.calls.get(name, 0)
            for name, n in self.calls.items()
            if n != before.calls.get(name, 0) and name != "info"
        }
        info = self.calls.get("info", 0) - before.calls.get("info", 0)
        return CommandCounts(self.total - before.total - info, calls)


class Monitor:
    """MONITOR on a raw socket, on a thread: counts commands by sender (client or Lua)."""

    def __init__(self, port: int) -> None:
        self.client_commands: Counter[str] = Counter()
        self.lua_commands: Counter[str] = Counter()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._sock.sendall(b"MONITOR\r\n")
        self._buffer = b""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Monitor:
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return
            *lines, self._buffer = (self._buffer + chunk).split(b"\r\n")
            for line in lines:
                self._count(line)

    def _count(self, line: bytes) -> None:
        found = _MONITOR_LINE.match(line)
        if not found:
            return  # "+OK" answering MONITOR itself
        sender, command = found.group(1), found.group(2).decode().lower()
        if command in _CONTAINERS and found.group(3):
            command += " " + found.group(3).decode().lower()
        target = self.lua_commands if sender == b"lua" else self.client_commands
        target[command] += 1
