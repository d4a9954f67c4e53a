"""Holding the send queue shut while it is preloaded, without touching the worker.

The benchmark creates the workers' consumer group itself, positioned at an id far in
the future: `XREADGROUP >` then hands a running worker nothing, however much is queued.
Setting the group back to 0 releases every entry at once. A worker calling
`ensure_group` finds the group already there (BUSYGROUP) and uses it as it is.
"""

from __future__ import annotations

import time

import redis

from app.store.keys import SEND_GROUP, SEND_STREAM

_FAR_FUTURE = "9999999999999-0"


def hold(client: redis.Redis) -> None:
    """Stop handing out new entries (creating the stream and group if needed)."""
    try:
        client.xgroup_create(SEND_STREAM, SEND_GROUP, id=_FAR_FUTURE, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        client.xgroup_setid(SEND_STREAM, SEND_GROUP, id=_FAR_FUTURE)


def release(client: redis.Redis) -> None:
    """Hand out every entry in the stream."""
    client.xgroup_setid(SEND_STREAM, SEND_GROUP, id="0")


def empty(client: redis.Redis, timeout_s: float = 15.0, stall_s: float = 1.0) -> int:
    """Once held: wait for the entries read to be acknowledged, then drop every entry.

    Bounded: gives up after `timeout_s`, or once the pending count has not moved for
    `stall_s` (entries a worker read and will never acknowledge, e.g. after an error).
    Returns how many entries were still pending; dropped entries are never reclaimed.
    """
    deadline = time.monotonic() + timeout_s
    pending = client.xpending(SEND_STREAM, SEND_GROUP)["pending"]
    moved = time.monotonic()
    while pending and time.monotonic() < min(deadline, moved + stall_s):
        time.sleep(0.05)
        now_pending = client.xpending(SEND_STREAM, SEND_GROUP)["pending"]
        if now_pending != pending:
            pending, moved = now_pending, time.monotonic()
    client.xtrim(SEND_STREAM, maxlen=0, approximate=False)
    return int(pending)
