"""The guard in the store: each delivery's velocity and caps input to admission (checked and
counted by admission_checks.lua in the admission script itself), its refusals in words,
and the back-off Twilio's SMS pumping answers set on a number and its block."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from app.durations import format_duration
from app.guard import HOUR_MS, PUMPING_BACKOFF_S, Caps, VelocityLimit, block_of, shown_block
from app.store import keys, storage_errors
from app.store.records import NewDelivery, iso_ms

log = logging.getLogger(__name__)

GuardVerdict = Literal["blocked_velocity", "capped"]


# The guard's keys are built in Lua from their parts (the input stays small: admission is
# the hot path); this is their common prefix, as keys.py names them.
GUARD_PRELUDE = f"\nlocal KEY_PREFIX = '{keys.PREFIX}'\n"


def guard_input(new: NewDelivery, now_ms: int, keep_ms: int) -> dict[str, Any]:
    """What admission's `guard_check` gets for `new` ({} when nothing applies): its
    velocity limits (live sends only: test mode texts nobody) and its caps, as
    admission_checks.lua reads them. `keep_ms`: how long a number stays known (texted
    before) after its last text."""
    if new.skip_reason or not new.recipient:
        return {}
    given: dict[str, Any] = {"r": new.recipient}
    if new.velocity and new.mode == "live":
        hour = now_ms - now_ms % HOUR_MS
        limits = _velocity_spec(new.velocity)
        given["v"] = (new.country or "001", hour, keep_ms, new.destination_id, limits)
    if new.caps is not None and new.capped:
        given["c"] = _caps_spec(new.mode, new.caps)
    return given


@functools.lru_cache(maxsize=1024)
def _velocity_spec(limits: tuple[VelocityLimit, ...]) -> orjson.Fragment:
    """A destination's limits as admission reads them, serialized once."""
    return orjson.Fragment(
        orjson.dumps([[x.range, int(x.scope == "destination"), x.limit] for x in limits])
    )


@functools.lru_cache(maxsize=1024)
def _caps_spec(mode: str, caps: Caps) -> orjson.Fragment:
    """A category's caps as admission reads them, serialized once."""
    rules = [[rule.texts, rule.per * 1000] for rule in caps.rules]
    longest = max(per for _, per in rules)
    return orjson.Fragment(orjson.dumps([f"{mode}:{caps.category}", rules, longest]))


@dataclass(frozen=True, slots=True)
class GuardRefusal:
    """Why the guard refused a delivery, in words (`detail`), and what tripped it: `alarm`
    names a velocity limit's range and hour ($sms_guard_triggered's key: one page per
    block or country per hour), None for the rest."""

    verdict: GuardVerdict
    detail: str
    alarm: str | None = None


def read_refusal(facts: list[Any], new: NewDelivery, now_ms: int) -> GuardRefusal:
    """A refusal from `guard_check`'s reply ({verdict, …facts}) for `new`."""
    verdict, kind = facts[0], facts[1]
    recipient = new.recipient or ""
    if verdict == "capped" and new.caps is not None:
        rule = new.caps.rules[int(kind)]
        count, frees = int(facts[3]), int(facts[2])
        return GuardRefusal(
            "capped",
            f"frequency cap of category '{new.caps.category}', {rule.describe()} per "
            f"recipient: {count} texts in the last {format_duration(rule.per)}; the next "
            f"one may go at {iso_ms(frees)}",
        )
    block = shown_block(block_of(recipient))
    if kind in ("number", "block"):
        until = iso_ms(now_ms + max(int(facts[3]), 0))
        code = facts[2]
        if kind == "number":
            why = f"this number is backed off until {until}"
        else:
            why = f"first-time recipients in block {block} are backed off until {until}"
        return GuardRefusal(
            "blocked_velocity", f"Twilio answered {code} (SMS pumping protection): {why}"
        )
    limit = new.velocity[int(facts[2])]
    where = block if limit.range == "block" else (new.country or "001")
    hour = now_ms - now_ms % HOUR_MS  # the counters are the hour's: they free at its end
    return GuardRefusal(
        "blocked_velocity",
        f"velocity: {int(facts[3])} first-time recipients this hour in "
        f"{limit.describe(where, new.destination_id)}, the limit is {limit.limit}; new "
        f"numbers there wait until {iso_ms(hour + HOUR_MS)}",
        alarm=f"velocity:{limit.range}:{where}:{iso_ms(hour)[:13]}",
    )


@storage_errors
class PumpingBackoffs:
    """Backs a number and its block off after Twilio's SMS pumping answers (30450, 30453):
    the number gets nothing, the block's first-time recipients nothing, for the time
    `PUMPING_BACKOFF_S` gives the code. Read by admission (`velocity_check`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def back_off(self, number: str, code: int) -> bool:
        """Back `number` and its block off if `code` is a pumping answer; True if it is."""
        seconds = PUMPING_BACKOFF_S.get(code)
        if seconds is None or not number:
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.pumping_backoff("number", number), code, ex=seconds)
            pipe.set(keys.pumping_backoff("block", block_of(number)), code, ex=seconds)
            await pipe.execute()
        log.warning(
            "Twilio answered %d (SMS pumping protection): backing off a number of block %s "
            "and the block's first-time recipients for %s",
            code,
            shown_block(block_of(number)),
            format_duration(seconds),
        )
        return True
