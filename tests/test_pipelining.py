"""The command batcher against a real Redis: concurrent callers share pipelines."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.store.connection import connect
from app.store.pipelining import CommandBatcher
from tests.conftest import REDIS_URL


@pytest.fixture
async def async_redis(redis_client: redis.Redis) -> AsyncIterator[Redis]:
    client = connect(REDIS_URL)
    yield client
    await client.aclose()


async def test_concurrent_callers_share_at_most_two_pipelines(async_redis: Redis) -> None:
    batcher = CommandBatcher(async_redis, max_in_flight=2)
    pipelines = in_flight = most_in_flight = 0
    real_pipeline = async_redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        async def execute(*a: Any, **k: Any) -> Any:
            nonlocal in_flight, most_in_flight
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            try:
                return await real_execute(*a, **k)
            finally:
                in_flight -= 1

        pipe.execute = execute
        return pipe

    async_redis.pipeline = counting_pipeline  # type: ignore[method-assign]

    async def caller(seed: int) -> list[tuple[int, int]]:
        pairs = []
        for i in range(20):
            # Staggered: callers keep arriving while pipelines are out.
            await asyncio.sleep((seed * 7 + i * 3) % 5 / 2000)
            pairs.append(tuple(await batcher.execute([("INCR", "n"), ("GET", "n")])))
        return pairs

    replies = [
        pair
        for pairs in await asyncio.gather(*(caller(seed) for seed in range(50)))
        for pair in pairs
    ]

    # Every caller got its own two replies, in order, and INCR ran exactly 1,000 times.
    assert sorted(int(get) for _, get in replies) == list(range(1, 1001))
    assert all(int(incr) == int(get) for incr, get in replies)
    assert most_in_flight <= 2
    assert pipelines < 500  # batches grew while pipelines were out: not a round trip each


async def test_a_lone_caller_sends_before_the_loop_turns(
    async_redis: Redis, redis_client: redis.Redis
) -> None:
    # Requests read in one loop turn are parsed one after the other in that turn; if the
    # first one's commands waited for the next turn, Redis would idle through them all.
    batcher = CommandBatcher(async_redis)
    await batcher.execute([("PING",)])  # a pooled connection, as under load
    seen_by_the_next_caller: list[str | None] = []

    async def next_caller() -> None:
        # Runs in the same loop turn as the first caller, before any reply is read.
        time.sleep(0.05)  # noqa: ASYNC251 - blocking on purpose: no loop turn may pass
        seen_by_the_next_caller.append(redis_client.get("n"))  # type: ignore[arg-type]

    first = asyncio.ensure_future(batcher.execute([("SET", "n", "sent")]))
    second = asyncio.ensure_future(next_caller())
    await asyncio.gather(first, second)
    assert seen_by_the_next_caller == ["sent"]


async def test_an_overdue_batch_goes_out_beside_a_slow_pipeline(async_redis: Redis) -> None:
    batcher = CommandBatcher(async_redis, max_in_flight=2, overdue_s=0.01)
    slow = asyncio.ensure_future(batcher.execute([("BLPOP", "nothing", "0.5")]))
    await asyncio.sleep(0.001)  # `slow` is out; the next caller waits behind it
    waiting = asyncio.ensure_future(batcher.execute([("INCR", "n")]))
    await asyncio.sleep(0.02)
    # This caller finds the batch overdue: both go out now on a second connection.
    assert await asyncio.wait_for(batcher.execute([("INCR", "n")]), timeout=0.3) == [2]
    assert waiting.done() and waiting.result() == [1]
    assert not slow.done()
    assert await slow == [None]


async def test_a_cancelled_sender_fails_its_pipeline_partners_as_a_lost_connection(
    async_redis: Redis,
) -> None:
    batcher = CommandBatcher(async_redis, max_in_flight=2, overdue_s=0.01)
    first = asyncio.ensure_future(batcher.execute([("BLPOP", "nothing", "0.3")]))
    await asyncio.sleep(0.001)
    partner = asyncio.ensure_future(batcher.execute([("INCR", "n")]))
    await asyncio.sleep(0.02)
    # Overdue: this caller sends the partner's command with its own, then is cancelled.
    sender = asyncio.ensure_future(batcher.execute([("BLPOP", "nothing", "0.3")]))
    await asyncio.sleep(0.05)
    sender.cancel()
    with pytest.raises(RedisConnectionError):
        await partner
    assert sender.cancelled()
    assert await first == [None]
    assert await asyncio.wait_for(batcher.execute([("PING",)]), timeout=1) == [True]


async def test_a_refused_command_is_that_callers_reply_only(async_redis: Redis) -> None:
    batcher = CommandBatcher(async_redis)
    bad, good = await asyncio.gather(
        batcher.execute([("INCRBY", "n", "not-a-number")]), batcher.execute([("INCR", "n")])
    )
    assert isinstance(bad[0], ResponseError) and good == [1]


async def test_a_connection_failure_reaches_every_caller_of_the_batch() -> None:
    unreachable = connect("redis://127.0.0.1:1/0")
    batcher = CommandBatcher(unreachable)
    results = await asyncio.gather(
        *(batcher.execute([("PING",)]) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RedisConnectionError) for r in results)
    await unreachable.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(async_redis: Redis) -> None:
    batcher = CommandBatcher(async_redis)
    cancelled = asyncio.ensure_future(batcher.execute([("INCR", "n")]))
    kept = asyncio.ensure_future(batcher.execute([("INCR", "n")]))
    cancelled.cancel()
    assert len(await kept) == 1
    assert cancelled.cancelled()


async def test_one_caller_after_another_never_waits_forever(async_redis: Redis) -> None:
    # A sender that has just finished must not still count as in flight, or the next
    # caller finds no free slot and nobody ever sends its command.
    batcher = CommandBatcher(async_redis, max_in_flight=1)
    for expected in range(1, 51):
        assert await asyncio.wait_for(batcher.execute([("INCR", "n")]), timeout=2) == [expected]


async def test_a_pipeline_unanswered_in_time_fails_its_callers(async_redis: Redis) -> None:
    batcher = CommandBatcher(async_redis, timeout_s=0.05)
    with pytest.raises(RedisTimeoutError):
        await batcher.execute([("BLPOP", "nothing", "1")])
    assert await batcher.execute([("PING",)]) == [True]  # the next pipeline is fine


async def test_tcp_connections_probe_a_silent_redis(async_redis: Redis) -> None:
    # No socket timeout (see app.store.connection): keepalive notices a vanished host.
    await async_redis.ping()
    connection = await async_redis.connection_pool.get_connection()
    try:
        sock = connection._writer.get_extra_info("socket")  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
    finally:
        await async_redis.connection_pool.release(connection)
