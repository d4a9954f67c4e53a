"""Issue 12's rows about the Redis behind the service: a Redis Cluster, and a node turned
read-only under load (an old master after a failover). tests/test_redis_checks.py checks
each refusal on its own (start-up, /readyz, one ingest); here the real processes run, and
events keep coming while it happens."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from bench.procs import (
    Processes,
    free_port,
    redis_server_argv,
    service_env,
    start_service,
    start_worker,
)
from tests.reliability.rig import Measure, Rig, Tally, destination, event
from tests.reliability.test_faults import TIMEOUT

pytestmark = pytest.mark.reliability


def test_a_redis_cluster_is_refused_before_anything_is_accepted(
    tmp_path: Path, measured: Measure
) -> None:
    # The row: every ingest 500, and 4 of 20 events lost for good (a dedupe key
    # written before the script failed). Now nothing starts, saying what to change: no
    # event is ever answered 202, so none can be lost.
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(yaml.safe_dump({"destinations": [destination()]}))
    with Processes(tmp_path / "logs") as procs:
        port = free_port()
        # A working one-node Cluster: every slot assigned, writes accepted.
        argv = [*redis_server_argv(port), "--dir", str(tmp_path), "--cluster-enabled", "yes"]
        procs.start("redis-cluster", [*argv, "--cluster-port", str(free_port())], {}, port)
        node = redis.Redis(port=port, decode_responses=True)
        _until(lambda: bool(node.ping()))
        _command(node, "CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        _until(lambda: "cluster_state:ok" in str(_command(node, "CLUSTER", "INFO")))
        env = service_env(port, destinations, "http://127.0.0.1:9")
        as_node = start_service(procs, "api-node", env)
        worker = start_worker(procs, "worker-node", env)
        as_url = start_service(
            procs, "api-url", {**env, "SMS_REDIS_URL": f"redis+cluster://127.0.0.1:{port}"}
        )
        codes = [p.popen.wait(30) for p in (as_node, worker, as_url)]
        logs = {p.name: (procs.log_dir / f"{p.name}.log").read_text() for p in procs.running}
        node.close()
    measured("a Redis Cluster node / URL", Tally(0, 0, 0, 0), f"exit codes {codes}")
    assert codes == [2, 2, 2], logs
    for name in ("api-node", "worker-node"):
        assert (
            "Redis is a Cluster node (cluster_enabled:1): smsdest needs a standalone"
            in (logs[name])
        )
    assert "Redis Cluster is not supported" in logs["api-url"]
    assert "Traceback" not in "".join(logs.values())


def test_the_node_turned_read_only_under_load(tmp_path: Path, measured: Measure) -> None:
    # The row: /readyz 200, ingest 500. The node the service is pointed at hands
    # its role to its replica (FAILOVER: writes paused until the replica has caught up,
    # then the roles swap) and, 3 s later, takes it back: meanwhile it is a read-only
    # replica, the senders are answered 503 with Retry-After and retry.
    with Rig.running(tmp_path, settings=TIMEOUT) as rig:
        rig.fake.latency = 0.2
        replica_port = free_port()
        argv = [*redis_server_argv(replica_port), "--dir", str(tmp_path)]
        argv += ["--replicaof", "127.0.0.1", str(rig.redis_proc.port)]
        rig.procs.start("redis-replica", argv, {}, replica_port)
        replica = redis.Redis(port=replica_port, decode_responses=True)
        _until(lambda: replica.info("replication").get("master_link_status") == "up")
        readiness: list[int] = []
        with ThreadPoolExecutor(1) as loader:
            loading = loader.submit(rig.post_steadily, [event(n) for n in range(300)], 60)
            rig.wait_for_requests(60)
            _failover(rig.redis, replica_port)
            _until(lambda: rig.redis.info("replication")["role"] == "slave")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                readiness.append(rig.api.client.get("/readyz").status_code)
                time.sleep(0.2)
            _failover(replica, rig.redis_proc.port)
            _until(lambda: rig.redis.info("replication")["role"] == "master")
            loading.result()
        rig.settle()
        tally = rig.tally()
        replica.close()
        back = rig.api.client.get("/readyz").status_code
    measured(
        "the node turned read-only 3 s under load (FAILOVER and back)",
        tally,
        f"{rig.refused} answers 503 (all with Retry-After: "
        f"{rig.refused_without_retry_after == 0}); /readyz {sorted(set(readiness))}",
    )
    assert (tally.duplicates, tally.lost) == (0, 0), rig.errors()
    assert rig.refused > 0 and rig.refused_without_retry_after == 0
    assert set(readiness) == {503} and back == 200


def _failover(master: redis.Redis, to_port: int) -> None:
    """FAILOVER: pause writes until the replica at `to_port` has everything, then swap."""
    _command(master, "FAILOVER", "TO", "127.0.0.1", to_port, "TIMEOUT", 5000)


def _command(client: redis.Redis, *args: object) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if callable(condition) and condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s")
        time.sleep(0.05)
