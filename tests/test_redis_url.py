"""SMS_REDIS_URL as read: one server, or Sentinels and a master name; anything else is a
configuration error saying what to write, never a traceback, never a password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.redis_url import SentinelTarget, parse_redis_url
from app.settings import Settings
from tests.conftest import REPO


def test_a_sentinel_url_names_hosts_master_db_and_both_logins() -> None:
    target = parse_redis_url(
        "redis+sentinel://app:m%40ster@10.0.0.1:26380,sentinel-b,[::1]:26381/orders/3"
        "?sentinel_username=watch&sentinel_password=s3cret"
    )
    assert target == SentinelTarget(
        sentinels=(("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381)),
        master="orders",
        db=3,
        username="app",
        password="m@ster",
        sentinel_username="watch",
        sentinel_password="s3cret",
    )
    assert "m@ster" not in repr(target) and "s3cret" not in repr(target)


def test_a_sentinel_url_without_logins_or_db() -> None:
    target = parse_redis_url("redis+sentinel://127.0.0.1:26379/mymaster")
    assert isinstance(target, SentinelTarget)
    assert (target.master, target.db, target.password, target.sentinel_password) == (
        "mymaster",
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    "url", ["redis://:pw@127.0.0.1:6379/0", "rediss://cache:6380", "unix:///run/redis.sock?db=1"]
)
def test_one_server_urls_are_left_to_redis_py(url: str) -> None:
    assert parse_redis_url(url) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://127.0.0.1:26379", "names its master"),
        ("redis+sentinel://127.0.0.1:26379/", "names its master"),
        ("redis+sentinel://127.0.0.1:26379/m/zero", "must be a number"),
        ("redis+sentinel://127.0.0.1:99999/m", "out of range"),
        ("redis+sentinel://127.0.0.1:26379/m?db=2", "unknown Sentinel URL option(s) db"),
        ("redis+sentinel://:pw@/m", "is not a Sentinel's host[:port]"),
        ("redis+cluster://:pw@10.0.0.1:7000", "Redis Cluster is not supported"),
        ("redis://:pw@10.0.0.1:7000,10.0.0.2:7000/0", "several hosts"),
        ("redis://:pw@localhost:6379/zero", "must be a number"),
        ("http://:pw@localhost:6379", "unknown scheme http://"),
        ("localhost:6379", "not a URL"),
    ],
)
def test_an_unusable_url_says_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=r".") as raised:
        parse_redis_url(url)
    assert says in str(raised.value)
    assert "pw" not in str(raised.value).replace("password", "")


def test_settings_refuse_it_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, redis_url="redis+sentinel://:hunter2@h:26379")  # type: ignore[call-arg]
    [error] = raised.value.errors()
    assert error["loc"] == ("redis_url",) and "names its master" in error["msg"]


def test_min_replicas_needs_a_redis_that_can_have_replicas() -> None:
    with pytest.raises(ValidationError, match="embedded Redis has no replicas"):
        Settings(_env_file=None, redis_min_replicas=1)  # type: ignore[call-arg]


def test_the_worker_exits_with_the_message_not_a_traceback() -> None:
    env = {
        **os.environ,
        "SMS_REDIS_URL": "redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:2",
        "SMS_INGEST_TOKEN": "t",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "redis_url" in done.stderr and "names its master after the hosts" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
