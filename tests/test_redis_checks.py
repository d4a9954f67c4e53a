"""The Redis the service runs on is checked: at start-up, in /readyz, and in the answers
to ingest when it turns away (503 + Retry-After, never 500). Each test runs redis-servers
of its own on free ports, to restart them, demote them or fill their memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from app.store import unavailable_reason
from app.store.connection import RedisUnfit, check_server, connect, refuse_unfit
from bench.procs import free_port, redis_server_argv
from tests.conftest import (
    INGEST_TOKEN,
    REPO,
    SIGNUP_DESTINATION,
    RunningService,
    posthog_webhook,
    write_destinations,
)

Start = Callable[..., RunningService]


class OwnRedis:
    """A redis-server this test started, on a port it keeps across restarts."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="smsdest-redis-check-")
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, *more: str) -> None:
        """Start it (again), with `more` options this time; back once it answers, even
        if only to say it is loading its data."""
        argv = [*redis_server_argv(self.port), "--dir", self.dir, *self.extra, *more]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                # No retries (redis-py's sync client retries LOADING until it is done).
                with redis.Redis(port=self.port, retry=Retry(NoBackoff(), 0)) as client:
                    client.ping()
                return
            except BusyLoadingError:
                return
            except (redis.ConnectionError, redis.TimeoutError):  # not up, or busy loading
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def own_redis() -> Iterator[Callable[..., OwnRedis]]:
    started: list[OwnRedis] = []

    def start(*extra: str) -> OwnRedis:
        server = OwnRedis(*extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def problems_of(url: str) -> list[str]:
    client = connect(url)
    try:
        return [problem.text for problem in await check_server(client)]
    finally:
        await client.aclose()


def test_a_standalone_master_that_never_evicts_is_fit(own_redis: Callable[..., OwnRedis]) -> None:
    assert asyncio.run(problems_of(own_redis().url)) == []


def test_a_user_not_allowed_info_is_judged_by_the_write(
    own_redis: Callable[..., OwnRedis],
) -> None:
    server = own_redis()
    server.client().acl_setuser(
        "smsdest", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-info"]
    )
    url = f"redis://smsdest:pw@127.0.0.1:{server.port}/0"
    assert asyncio.run(problems_of(url)) == []
    server.client().config_set("maxmemory", "1")
    [problem] = asyncio.run(problems_of(url))
    assert problem.startswith("Redis is out of memory")


def test_an_evicting_policy_is_refused_at_start_up(own_redis: Callable[..., OwnRedis]) -> None:
    server = own_redis("--maxmemory-policy", "allkeys-lru")

    async def start_up() -> None:
        client = connect(server.url)
        try:
            await refuse_unfit(client)
        finally:
            await client.aclose()

    with pytest.raises(RedisUnfit, match=r"maxmemory-policy allkeys-lru.*set maxmemory-policy"):
        asyncio.run(start_up())


def test_a_cluster_node_is_refused(own_redis: Callable[..., OwnRedis]) -> None:
    # Its bus on a free port of its own (the default, port + 10000, may be past 65535).
    server = own_redis("--cluster-enabled", "yes", "--cluster-port", str(free_port()))
    problems = asyncio.run(problems_of(server.url))
    # (Its slots are not assigned yet, so the write probe also fails: CLUSTERDOWN.)
    assert problems[0].startswith("Redis is a Cluster node") and "standalone" in problems[0]


def test_a_replica_is_refused_by_the_worker_saying_what_to_change(
    own_redis: Callable[..., OwnRedis], tmp_path: Path
) -> None:
    master, replica = own_redis(), own_redis()
    replica.client().replicaof("127.0.0.1", master.port)
    env = {
        **os.environ,
        "SMS_REDIS_URL": replica.url,
        "SMS_DESTINATIONS_FILE": str(write_destinations(tmp_path, SIGNUP_DESTINATION)),
        "SMS_TEMPLATES_DIR": str(REPO / "templates"),
        "SMS_INGEST_TOKEN": INGEST_TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert (
        f"SMS_REDIS_URL: Redis is a replica of 127.0.0.1:{master.port} (read-only): "
        "point SMS_REDIS_URL at the master"
    ) in done.stderr


def test_readyz_and_ingest_when_the_node_turns_read_only(
    start_service: Start, own_redis: Callable[..., OwnRedis]
) -> None:
    server, elsewhere = own_redis(), own_redis()
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=server.url)
    with httpx.Client(base_url=service.base_url) as client:
        assert client.get("/readyz").status_code == 200
        # A failover demotes it: it follows the new master and refuses writes.
        server.client().replicaof("127.0.0.1", elsewhere.port)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
        assert f"Redis is a replica of 127.0.0.1:{elsewhere.port}" in ready.json()["detail"]
        answer = service.post_events(posthog_webhook(uuid="while-read-only"))
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["error"] == "unavailable"
        # Promoted back: ready, and the sender's retry is admitted.
        server.client().replicaof("NO", "ONE")
        assert client.get("/readyz").status_code == 200
        retried = service.post_events(posthog_webhook(uuid="while-read-only"))
        assert retried.json()["results"][0]["deliveries"][0]["decision"] == "queued"


def test_out_of_memory_is_503_and_red(
    start_service: Start, own_redis: Callable[..., OwnRedis]
) -> None:
    server = own_redis()
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=server.url)
    server.client().config_set("maxmemory", "1")  # every write is over the limit
    with httpx.Client(base_url=service.base_url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("Redis is out of memory")
    answer = service.post_events(posthog_webhook(uuid="oom"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5", answer.text


def test_a_replica_that_lost_its_master_answers_reads_with_503(
    start_service: Start, own_redis: Callable[..., OwnRedis]
) -> None:
    server = own_redis()
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=server.url)
    queued = service.post_events(posthog_webhook(uuid="before")).json()
    delivery_id = queued["results"][0]["deliveries"][0]["delivery_id"]
    admin = server.client()
    admin.config_set("replica-serve-stale-data", "no")
    admin.replicaof("127.0.0.1", free_port())  # a master that is not there: MASTERDOWN
    with service.admin() as client:
        answer = client.get(f"/v1/deliveries/{delivery_id}")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5", answer.text


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
        (RedisConnectionError("Connection refused"), "cannot be reached"),
        (ReadOnlyError("You can't write against a read only replica."), "read-only"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "memory"),
        (MasterDownError("Link with MASTER is down"), "lost its master"),
        (ResponseError("MISCONF Errors writing to the AOF file"), "persist"),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), "replicas"),
        (ResponseError("ERR user_script:1: oops"), None),
    ],
)
def test_which_redis_errors_mean_retry_later(error: Exception, reason: str | None) -> None:
    found = unavailable_reason(error)  # type: ignore[arg-type]
    assert found is None if reason is None else reason in str(found)


def test_a_restarted_redis_fails_no_probe_and_no_ingest(
    start_service: Start, own_redis: Callable[..., OwnRedis]
) -> None:
    server = own_redis()
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=server.url)
    with ThreadPoolExecutor(16) as pool, service.client() as client:

        def ingest(n: int) -> int:
            return client.post("/v1/events", json=posthog_webhook(uuid=f"evt-{n}")).status_code

        # Many requests at once: the pool holds many connections.
        assert set(pool.map(lambda _: client.get("/readyz").status_code, range(64))) == {200}
        assert set(pool.map(ingest, range(200))) == {202}
        server.stop()
        server.start()  # same port, a new process: every pooled connection is dead
        probes = [client.get("/readyz").status_code for _ in range(60)]
        assert probes == [200] * 60
        assert list(pool.map(ingest, range(200, 400))) == [202] * 200


def test_a_redis_loading_its_data_is_red_and_503_then_ready(
    start_service: Start, own_redis: Callable[..., OwnRedis]
) -> None:
    server = own_redis("--enable-debug-command", "local")
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=server.url)
    admin = server.client()
    admin.execute_command("DEBUG", "POPULATE", "50000")  # enough to load for seconds…
    admin.save()
    server.stop()
    # …at 40 µs a key (2 s or more), answering (LOADING) every 1 KB read.
    server.start("--key-load-delay", "40", "--loading-process-events-interval-bytes", "1024")
    with httpx.Client(base_url=service.base_url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
        assert ready.json()["detail"].startswith("Redis is loading its data")
        answer = service.post_events(posthog_webhook(uuid="while-loading"))
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5", answer.text
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "still loading after 30 s"
            time.sleep(0.2)
    retried = service.post_events(posthog_webhook(uuid="while-loading"))
    assert retried.json()["results"][0]["deliveries"][0]["decision"] == "queued"
