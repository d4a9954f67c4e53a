"""The only package that talks to Redis (and imports `redis`): keys, typed records, the
delivery log, the send queue, the suppression list, webhook and reconciliation state.

Callers see the project's own storage errors, never redis-py's: `StorageError` (Redis
refused or failed a command) and its subclass `StorageUnavailable` (Redis could not be
reached or did not answer in time). The API answers both with 503 (app/api/error_handlers.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["StorageError", "StorageUnavailable", "storage_errors", "translate"]


class StorageError(Exception):
    """Redis refused or failed a command (READONLY, OOM, NOGROUP, …): nothing was done."""


class StorageUnavailable(StorageError):
    """Redis could not be reached, or did not answer in time."""


def translate(exc: RedisError) -> StorageError:
    """The storage error for a redis-py error (its message kept)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return StorageUnavailable(str(exc) or type(exc).__name__)
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
