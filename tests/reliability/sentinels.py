"""A Redis master, its replica and three Sentinels on loopback, for the failover rows.

Every server is the machine's `redis-server` (Sentinels: `redis-server <conf> --sentinel`)
on a free port, started and always stopped through bench/procs.py's `Processes`. Sentinels
judge a master down after 1 s without an answer (quorum 2), so a failover takes a few
seconds instead of the default 30+.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.procs import Proc, Processes, free_port, redis_server_argv

MASTER_NAME = "smsdest"
DOWN_AFTER_MS = 1000
REPLICATOR = "replicator"


@dataclass
class Sentinels:
    """The setup: `master` and `replica` (they swap roles in a failover), `sentinels`."""

    procs: Processes
    folder: Path
    master: Proc = field(init=False)
    replica: Proc = field(init=False)
    sentinels: list[Proc] = field(default_factory=list)
    sentinel_password: str | None = None

    @classmethod
    def start(
        cls, procs: Processes, folder: Path, sentinel_password: str | None = None
    ) -> Sentinels:
        """Master, then its replica (in sync), then three Sentinels that know both and
        each other (each asking `sentinel_password` of its clients, when given); returned
        once a failover could happen."""
        setup = cls(procs, folder, sentinel_password=sentinel_password)
        setup.master = setup._server("master")
        # The replica logs in as a user of its own, which `drop_link` can turn away.
        _client(setup.master.port).acl_setuser(
            REPLICATOR, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"]
        )
        setup.replica = setup._server(
            "replica",
            replica_of=setup.master.port,
            extra=("--masteruser", REPLICATOR, "--masterauth", "pw"),
        )
        setup._wait_linked(setup.replica.port)
        for n in range(3):
            setup.sentinels.append(setup._sentinel(n))
        setup.wait_known()
        return setup

    @property
    def url(self) -> str:
        """The service's SMS_REDIS_URL: every Sentinel, the master's name, db 0."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        login = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0{login}"

    def master_port(self) -> int:
        """The master's port, as the first Sentinel answering says."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                client = _client(sentinel.port, self.sentinel_password)
                found: Any = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(found[1])
        raise RuntimeError("no Sentinel answers")

    def wait_known(self, timeout: float = 30.0) -> None:
        """Until every Sentinel sees the master up, its replica and the two others."""

        def known() -> bool:
            for sentinel in self.sentinels:
                client = _client(sentinel.port, self.sentinel_password)
                state: Any = client.sentinel_master(MASTER_NAME)
                replicas: Any = client.sentinel_slaves(MASTER_NAME)
                if state["num-other-sentinels"] < 2 or "s_down" in state["flags"]:
                    return False
                if not any(not r["is_sdown"] for r in replicas):
                    return False
            return True

        _until(known, timeout)

    def kill_master(self) -> Proc:
        """SIGKILL the master: nothing is flushed, its replica stops hearing from it."""
        os_killed = self.master
        os_killed.popen.kill()
        os_killed.popen.wait(10)
        return os_killed

    def drop_link(self) -> None:
        """Cut the replica's link to the master, and turn its reconnections away: what
        the master writes from now on never reaches it. (SIGSTOP would not do: the
        kernel goes on receiving for a stopped process, which reads it all once
        continued; a relay in between would be undone by Sentinel, which points a
        replica following another address back at the master.)"""
        master = _client(self.master.port)
        master.acl_setuser(REPLICATOR, enabled=False)
        master.client_kill_filter(user=REPLICATOR)
        _until(lambda: master.info("replication")["connected_slaves"] == 0)

    def wait_promoted(self, timeout: float = 30.0) -> float:
        """Until the Sentinels name the replica master (and it says so); the seconds taken."""
        start = time.monotonic()
        _until(
            lambda: (
                self.master_port() == self.replica.port
                and _client(self.replica.port).info("replication")["role"] == "master"
            ),
            timeout,
        )
        self.master, self.replica = self.replica, self.master
        return time.monotonic() - start

    def restart_old_master(self) -> None:
        """The killed master back, as the new master's replica (as Sentinel rewrites its
        configuration), so that a write can again reach a replica."""
        port = self.replica.port
        self.replica = self._server("old-master", replica_of=self.master.port, port=port)
        self._wait_linked(port)

    @staticmethod
    def _wait_linked(port: int) -> None:
        _until(lambda: _client(port).info("replication")["master_link_status"] == "up")

    def _server(
        self,
        name: str,
        replica_of: int | None = None,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> Proc:
        port = port or free_port()
        # A directory of its own: a replica's full sync writes an RDB file there (in the
        # working directory by default: the repository's), which a server started there
        # later would load.
        folder = self.folder / f"redis-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        argv = [*redis_server_argv(port), "--dir", str(folder), "--repl-diskless-sync", "yes"]
        argv += ["--repl-diskless-sync-delay", "0"]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of), *extra]
        proc = self.procs.start(f"redis-{name}", argv, {}, port)
        _until(lambda: _ping(port), 10)
        return proc

    def _sentinel(self, n: int) -> Proc:
        port = free_port()
        folder = self.folder / f"sentinel-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        if self.sentinel_password:  # asked of clients, and given to the other Sentinels
            password = self.sentinel_password
            conf.write_text(
                conf.read_text() + f"requirepass {password}\nsentinel sentinel-pass {password}\n"
            )
        argv = [redis_server_argv(port)[0], str(conf), "--sentinel"]
        proc = self.procs.start(f"sentinel-{n}", argv, {}, port)
        _until(lambda: _ping(port, self.sentinel_password), 10)
        return proc


def _client(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, decode_responses=True, socket_timeout=2)


def _ping(port: int, password: str | None = None) -> bool:
    try:
        return bool(_client(port, password).ping())
    except redis.RedisError:
        return False


def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, KeyError):
            if callable(condition) and condition():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for the Redis setup")
        time.sleep(0.1)
