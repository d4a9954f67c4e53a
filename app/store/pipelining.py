"""Few Redis round trips for many concurrent callers.

Under load a process handles many requests (or sends) at once, each wanting a round trip
of its own. redis-py spends ~150 µs of CPU per round trip however small, and ~15 µs per
command in it: sending concurrent callers' commands together as one pipeline costs a
fraction. Nobody waits for a batch to fill: a caller who finds Redis idle sends at once.

The pipeline is not a transaction: each caller's commands must be atomic on their own
(one Lua script each, as every state change of a delivery is).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["CommandBatcher", "RedisCommand"]

RedisCommand = tuple[Any, ...]  # ("EVALSHA", sha, numkeys, *keys, *args)
_Waiting = list[tuple[Sequence[RedisCommand], "asyncio.Future[list[Any]]"]]


class CommandBatcher:
    """Coalesces concurrent callers' commands into non-transactional pipelines.

    A caller who finds no pipeline out sends its commands at once, from its own step.
    Callers arriving while one is out wait, and go out together when it returns: under
    load the batches grow instead of the round trips multiplying.

    Waiting has a limit. The process sees a pipeline return only between two turns of its
    event loop, and one turn may parse many large requests (16 batches of 100 events are
    ~60 ms); meanwhile Redis, done long ago, would sit idle, then the process while Redis
    catches up: lock-step, measured at ~2/3 of the batch throughput. So a batch that has
    waited longer than `overdue_s` goes out at once on another connection, up to
    `max_in_flight` pipelines out.

    A pipeline unanswered after `timeout_s` fails its callers with a Redis TimeoutError
    (the client's connections have no socket timeout: see `app.store.connection`).
    """

    def __init__(
        self,
        redis: Redis,
        max_in_flight: int = 4,
        overdue_s: float = 0.002,
        timeout_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self._overdue_s = overdue_s
        self._waiting: _Waiting = []
        self._waiting_since = 0.0  # when the first of `_waiting` arrived (monotonic)
        self._in_flight = 0  # senders running; each drops out in the same step it sees none
        self._tasks: set[asyncio.Task[None]] = set()  # references, so none is collected

    async def execute(self, commands: Sequence[RedisCommand]) -> list[Any]:
        """The replies to `commands`, in order. A command Redis refused has its error
        (a `redis.exceptions.ResponseError`) as its reply; a connection failure raises."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        now = time.monotonic()
        if not self._waiting:
            self._waiting_since = now
        self._waiting.append((commands, future))
        if self._in_flight == 0 or (
            self._in_flight < self._max_in_flight and now - self._waiting_since > self._overdue_s
        ):
            # From this step, not a task: a task would start only after every request
            # read in this loop turn had been parsed.
            self._in_flight += 1
            await self._drain(sender=future)
        return await future

    def _start_sender(self) -> None:
        self._in_flight += 1  # now, not when the task starts: the slot is taken
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, sender: asyncio.Future[list[Any]] | None = None) -> None:
        """Send whoever waits, a pipeline at a time, until nobody does; then free the slot.
        A caller sending from its own step (`sender`, its future) sends one pipeline and
        leaves whoever came meanwhile to a sender task: its own reply is not held up."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch, sender)
                if sender is not None:
                    break
        finally:
            # No await between the last look at `_waiting` and here: a caller arriving
            # after it finds the slot free (or a sender started for it).
            self._in_flight -= 1
            if self._waiting and self._in_flight == 0:
                self._start_sender()

    async def _send(self, batch: _Waiting, sender: asyncio.Future[list[Any]] | None) -> None:
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._redis.pipeline(transaction=False) as pipe,
            ):
                for commands, _ in batch:
                    for command in commands:
                        pipe.execute_command(*command)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        except TimeoutError:
            slow = RedisTimeoutError(f"Redis did not answer within {self._timeout_s} s")
            for _, future in batch:
                if not future.done():
                    future.set_exception(slow)
            return
        except asyncio.CancelledError:
            # The sending caller (or, at shutdown, the sender task) was cancelled: the
            # other callers' replies are lost with the connection, as in a connection
            # failure. Their commands may or may not have run.
            lost = RedisConnectionError("a shared pipeline was interrupted before its replies")
            for _, future in batch:
                if future is sender:
                    future.cancel()
                elif not future.done():
                    future.set_exception(lost)
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for commands, future in batch:
            if not future.done():  # the caller may have been cancelled meanwhile
                future.set_result(replies[start : start + len(commands)])
            start += len(commands)
