"""The only package that talks to Redis (and imports `redis`): keys, typed records, the
delivery log, the send queue, the suppression list, webhook and reconciliation state.

Callers see the project's own storage errors, never redis-py's: `StorageError` (Redis
refused or failed a command) and its subclass `StorageUnavailable` (Redis could not be
reached or did not answer in time), and `NotReplicated` (written, but not confirmed by
SMS_REDIS_MIN_REPLICAS replicas in time). The API answers them with 503
(app/api/error_handlers.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "NotReplicated",
    "StorageError",
    "StorageUnavailable",
    "storage_errors",
    "translate",
    "unavailable_reason",
]

# Redis refusing for now, not for good: whoever asked may retry later (HTTP 503 with
# Retry-After), and nothing was acknowledged. Checked in order; the first match says why.
_UNAVAILABLE: tuple[tuple[type[RedisError], str], ...] = (
    (BusyLoadingError, "Redis is loading its data"),  # LOADING (before ConnectionError)
    (RedisConnectionError, "Redis cannot be reached"),
    (RedisTimeoutError, "Redis did not answer in time"),
    (ReadOnlyError, "Redis is read-only (a replica, or a master demoted by a failover)"),
    (OutOfMemoryError, "Redis is out of memory (maxmemory reached)"),
    (ClusterDownError, "Redis has lost its master"),  # MASTERDOWN, CLUSTERDOWN
    (TryAgainError, "Redis asks to try again"),
)
# Refusals redis-py has no class for: the reply's first word.
_UNAVAILABLE_CODES = {
    "MISCONF": "Redis refuses writes: it cannot persist to disk",
    "NOREPLICAS": "Redis refuses writes: too few replicas (min-replicas-to-write)",
}


class StorageError(Exception):
    """Redis refused or failed a command (READONLY, OOM, NOGROUP, …): nothing was done."""


class StorageUnavailable(StorageError):
    """Redis refuses for now: unreachable, too slow, loading, read-only, out of memory…
    A retry later may succeed (`unavailable_reason` says why)."""


class NotReplicated(StorageUnavailable):
    """A write was made on the master, but fewer replicas than SMS_REDIS_MIN_REPLICAS
    confirmed it in time: it might not survive a failover. Its message says so in words
    for whoever asked (a retry is safe: what was written is then a duplicate)."""


def unavailable_reason(exc: RedisError) -> str | None:
    """Why Redis refused for now (a retry later may succeed), or None for any other error
    (a bug, a script error: retrying would not help)."""
    for kind, reason in _UNAVAILABLE:
        if isinstance(exc, kind):
            return reason
    if type(exc) is ResponseError:
        return _UNAVAILABLE_CODES.get(str(exc).split(" ", 1)[0])
    return None


def translate(exc: RedisError) -> StorageError:
    """The storage error for a redis-py error (its message kept)."""
    reason = unavailable_reason(exc)
    if reason is not None:
        return StorageUnavailable(f"{reason}: {exc}")
    return StorageError(str(exc) or type(exc).__name__)


_C = TypeVar("_C", bound=type)
_R = TypeVar("_R")


def _translating(method: Callable[..., Awaitable[_R]]) -> Callable[..., Awaitable[_R]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> _R:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise translate(exc) from exc

    return wrapper


def storage_errors(cls: _C) -> _C:
    """Class decorator: every public coroutine method raises `StorageError`s instead of
    redis-py's errors (a try block costs nothing until something is raised)."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _translating(member))
    return cls
