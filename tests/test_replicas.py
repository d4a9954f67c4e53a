"""SMS_REDIS_MIN_REPLICAS (WAIT before a promise) and Sentinel URLs, against real
redis-servers and Sentinels of each test's own. The failover itself, under load, is a
reliability row (tests/reliability/test_failover.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.procs import Processes
from tests.conftest import SIGNUP_DESTINATION, RunningService, posthog_webhook
from tests.reliability.sentinels import MASTER_NAME, Sentinels
from tests.test_redis_checks import OwnRedis

Start = Callable[..., RunningService]


@pytest.fixture
def master_and_replica() -> Iterator[tuple[OwnRedis, OwnRedis]]:
    master, replica = OwnRedis(), OwnRedis()
    _follow(replica, master)
    yield master, replica
    replica.stop()
    master.stop()


def _follow(replica: OwnRedis, master: OwnRedis) -> None:
    replica.client().replicaof("127.0.0.1", master.port)
    _until(lambda: replica.client().info("replication")["master_link_status"] == "up")


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _waits(server: OwnRedis) -> int:
    """WAIT commands the server has run."""
    stats = server.client().info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def test_a_promise_waits_for_the_replica_and_a_503_says_why(
    start_service: Start, master_and_replica: tuple[OwnRedis, OwnRedis]
) -> None:
    master, replica = master_and_replica
    service = start_service(
        SIGNUP_DESTINATION,
        run_worker=False,
        redis_url=master.url,
        redis_min_replicas=1,
        redis_wait_timeout=200,
    )
    queued = service.post_events(posthog_webhook(uuid="with-replica"))
    assert queued.json()["results"][0]["deliveries"][0]["decision"] == "queued"
    assert _waits(master) >= 1
    # The replica goes away: nothing is promised any more, and the answers say why.
    replica.stop()
    _until(lambda: master.client().info("replication")["connected_slaves"] == 0)
    with service.admin() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "0 replica(s) connected, SMS_REDIS_MIN_REPLICAS=1" in ready.json()["detail"]
        added = client.post("/v1/suppressions", json={"number": "+14155550123"})
        assert added.status_code == 503 and added.headers["retry-after"] == "5", added.text
    refused = service.post_events(posthog_webhook(uuid="without-replica"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "unavailable"
    assert (
        "confirmed by 0 of the 1 replica(s) SMS_REDIS_MIN_REPLICAS requires within 200 ms"
        in (refused.json()["detail"])
    )
    # Back: the sender's retry finds what the refused request wrote, now replicated.
    replica.start()
    _follow(replica, master)
    retried = service.post_events(posthog_webhook(uuid="without-replica"))
    assert retried.status_code == 202, retried.text
    [delivery] = retried.json()["results"][0]["deliveries"]
    assert delivery["decision"] == "duplicate"
    original = delivery["detail"].rsplit("delivery ", 1)[1]
    assert service.delivery(original)["status"] == "queued"
    assert replica.client().exists(f"smsdest:delivery:{original}")


def test_no_wait_is_sent_by_default(
    start_service: Start, fake_twilio: object, master_and_replica: tuple[OwnRedis, OwnRedis]
) -> None:
    master, _ = master_and_replica
    service = start_service(SIGNUP_DESTINATION, redis_url=master.url)
    answer = service.post_events([posthog_webhook(uuid=f"e{n}") for n in range(20)])
    ids = [r["deliveries"][0]["delivery_id"] for r in answer.json()["results"]]
    for delivery_id in ids:  # admitted, then sent by the worker: no WAIT on either path
        service.wait_for_status(delivery_id, "sent", "delivered")
    assert _waits(master) == 0


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    with Processes(tmp_path / "logs") as procs:
        yield Sentinels.start(procs, tmp_path, sentinel_password="watch-pw")


def test_a_service_through_sentinels_with_their_password(
    start_service: Start, sentinels: Sentinels
) -> None:
    service = start_service(SIGNUP_DESTINATION, redis_url=sentinels.url, redis_min_replicas=1)
    with httpx.Client(base_url=service.base_url) as client:
        assert client.get("/readyz").status_code == 200
    answer = service.post_events(posthog_webhook(uuid="through-sentinel"))
    [delivery] = answer.json()["results"][0]["deliveries"]
    assert delivery["decision"] == "queued"
    assert service.wait_for_status(delivery["delivery_id"], "sent", "delivered")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("watch-pw", "wrong-pw"), "names a master 'smsdest' (AuthenticationError)"),
        (("/smsdest/", "/nobody/"), "names a master 'nobody': check the master name"),
    ],
)
def test_sentinels_that_cannot_name_the_master_keep_readiness_red(
    start_service: Start, sentinels: Sentinels, change: tuple[str, str], says: str
) -> None:
    assert MASTER_NAME == "smsdest"
    url = sentinels.url.replace(*change)
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url=url)
    with httpx.Client(base_url=service.base_url) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and says in ready.json()["detail"]
    assert "-pw" not in ready.json()["detail"]
    refused = service.post_events(posthog_webhook(uuid="no-master"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
