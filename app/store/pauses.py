"""Paused destinations and daily budgets: the destination's own gate.

A paused destination admits nothing (`destination_paused`, decided in the admission script
itself: destination_gate.lua) and its deliveries already admitted are held, neither sent
nor failed, until it resumes. A destination pauses when an operator says so, when Twilio
answers a code whose action is to pause (bad credentials, sender unfit…), or when its daily
budget is spent (`over_budget`: paused until the budget day ends).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.deliveries import _STATUS_INDEXES, _json_input
from app.store.records import DeliveryRecord, SendOutcome, iso_ms, now_ms, single_line
from app.store.scripts import lua

PausedBy = Literal["operator", "error_code", "budget"]

_PAUSE = lua("destination_gate.lua", "pause.lua")
_RESUME = lua("resume.lua")
_HOLD = lua(
    "history.lua",
    "transition.lua",
    "json_input.lua",
    "destination_gate.lua",
    "hold.lua",
    prelude=_STATUS_INDEXES,
)
_RELEASE_BUDGET = lua("release_budget.lua")


@dataclass(frozen=True, slots=True)
class Pause:
    """One destination's pause, as stored (times in epoch ms; `until_ms` None: until
    resumed)."""

    destination: str
    since_ms: int
    by: PausedBy
    reason: str
    until_ms: int | None = None
    code: int | None = None
    budget_key: str | None = None  # a budget pause: the day's spend (resume waives it)

    def active(self, at_ms: int | None = None) -> bool:
        """Whether the pause is in force at `at_ms` (default: now)."""
        return self.until_ms is None or self.until_ms > (at_ms if at_ms is not None else now_ms())

    def describe(self) -> str:
        """Since when, why, until when and how to resume, in words (a decision's detail)."""
        who = {
            "operator": "by an operator",
            "error_code": f"after Twilio error {self.code}" if self.code else "by Twilio's answer",
            "budget": "by its daily budget",
        }[self.by]
        ends = (
            f"until {iso_ms(self.until_ms)} (it ends by itself) or until resumed"
            if self.until_ms is not None
            else "until resumed"
        )
        how = (
            f"POST /v1/destinations/{self.destination}/resume or "
            f"`smsdest destinations resume {self.destination}`"
        )
        return (
            f"destination {self.destination} paused since {iso_ms(self.since_ms)} {who}: "
            f"{self.reason}; {ends} ({how})"
        )

    def to_json(self) -> dict[str, Any]:
        """The pause as the API shows it."""
        return {
            "since": iso_ms(self.since_ms),
            "until": iso_ms(self.until_ms) if self.until_ms is not None else None,
            "by": self.by,
            "reason": self.reason,
            "code": self.code,
            "detail": self.describe(),
        }

    def stored(self) -> bytes:
        """The pauses hash's value (destination_gate.lua reads `until` from it)."""
        value: dict[str, Any] = {"since": self.since_ms, "by": self.by, "reason": self.reason}
        if self.until_ms is not None:
            value["until"] = self.until_ms
        if self.code is not None:
            value["code"] = self.code
        if self.budget_key:
            value["budget_key"] = self.budget_key
        return orjson.dumps(value)


def parse_pause(destination: str, raw: str | bytes) -> Pause:
    """A pause as stored (the pauses hash's JSON value for `destination`)."""
    data = orjson.loads(raw)
    until = data.get("until")
    code = data.get("code")
    by = data.get("by")
    return Pause(
        destination=destination,
        since_ms=int(data.get("since") or 0),
        by=by if by in ("operator", "error_code", "budget") else "operator",
        reason=str(data.get("reason") or ""),
        until_ms=int(until) if isinstance(until, int | float) else None,
        code=int(code) if isinstance(code, int | float) else None,
        budget_key=data.get("budget_key") or None,
    )


def count_active(raw: dict[str, str], at_ms: int) -> int:
    """How many of the pauses hash's values (HGETALL) are in force at `at_ms`."""
    return sum(parse_pause(d, value).active(at_ms) for d, value in raw.items())


def over_budget_detail(destination: str, facts: str) -> str:
    """An `over_budget` decision's detail from the gate's facts (JSON): what was spent of
    the budget, what this message needed, when the budget resets, and the pause."""
    data = orjson.loads(facts)
    pause = parse_pause(destination, facts)
    spent = []
    if data.get("segments_limit") is not None:
        spent.append(
            f"{data.get('segments', 0)} of {data['segments_limit']} segments spent, this "
            f"message needs {data.get('needs', 0)}"
        )
    if data.get("cost_limit") is not None:
        spent.append(
            f"{_money(data.get('cost', 0))} of {_money(data['cost_limit'])} spent, this "
            f"message costs {_money(data.get('costs', 0))}"
        )
    return (
        f"destination {destination} is over its daily budget ({'; '.join(spent)}); the "
        f"budget resets at {iso_ms(pause.until_ms or 0)}: paused until then or until "
        f"resumed (POST /v1/destinations/{destination}/resume or "
        f"`smsdest destinations resume {destination}`)"
    )


def _money(millionths: int | float) -> str:
    """Millionths as money: at least cents, at most four decimals (0.0083, 5.00)."""
    text = f"{millionths / 1_000_000:.4f}"
    while text.endswith("0") and len(text.partition(".")[2]) > 2:
        text = text[:-1]
    return text


@storage_errors
class PauseBook:
    """The pauses hash and the scripts that hold and release around it."""

    def __init__(self, redis: Redis, recheck_s: float = 300.0) -> None:
        self._redis = redis
        self._recheck_ms = int(recheck_s * 1000)
        self._pause = redis.register_script(_PAUSE)
        self._resume = redis.register_script(_RESUME)
        self._hold = redis.register_script(_HOLD)
        self._release_budget = redis.register_script(_RELEASE_BUDGET)

    async def pause(self, pause: Pause, *, replace: bool) -> tuple[Pause, bool]:
        """Pause `pause.destination`: (the pause in force, True when this one was written).
        Without `replace`, a pause already in force stands (and is returned)."""
        written, current = await self._pause(
            keys=[keys.PAUSES],
            args=[pause.destination, pause.stored(), now_ms(), "1" if replace else ""],
        )
        return parse_pause(pause.destination, current), bool(written)

    async def resume(self, destination: str) -> tuple[Pause | None, int]:
        """Lift `destination`'s pause: (the pause lifted, None if there was none in force;
        how many held deliveries were made due now)."""
        raw, released = await self._resume(
            keys=[keys.PAUSES, keys.DELAYED_SENDS, keys.held_for(destination)],
            args=[destination, now_ms()],
        )
        lifted = parse_pause(destination, raw) if raw else None
        return (lifted if lifted and lifted.active() else None), int(released)

    async def get(self, destination: str) -> Pause | None:
        """`destination`'s pause in force, None when it is not paused."""
        raw: str | None = await self._redis.hget(keys.PAUSES, destination)  # type: ignore[assignment]
        pause = parse_pause(destination, raw) if raw else None
        return pause if pause and pause.active() else None

    async def all(self) -> dict[str, Pause]:
        """Every pause in force, by destination."""
        raw: dict[str, str] = await self._redis.hgetall(keys.PAUSES)  # type: ignore[assignment]
        now = now_ms()
        pauses = (parse_pause(d, value) for d, value in raw.items())
        return {p.destination: p for p in pauses if p.active(now)}

    async def hold(
        self,
        record: DeliveryRecord,
        entry_id: str,
        detail: str,
        *,
        attempt: int | None = None,
        outcome: SendOutcome | None = None,
    ) -> None:
        """Hold a delivery of a paused destination (hold.lua) and acknowledge its entry."""
        payload = _json_input(
            (
                keys.delivery(record.id),
                keys.SEND_STREAM,
                keys.DELAYED_SENDS,
                keys.PAUSES,
                keys.held_for(record.destination),
            ),
            (
                record.id,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                keys.SEND_GROUP,
                entry_id,
                self._recheck_ms,
                attempt if attempt is not None else "",
                single_line(detail),
                *(outcome.fields() if outcome else ()),
            ),
        )
        await self._hold(args=[payload])

    async def release_budget(self, delivery_id: str) -> bool:
        """Give back what a delivery counted in its budget (a send failed for good)."""
        released: int = await self._release_budget(keys=[keys.delivery(delivery_id)])
        return bool(released)

    async def spent(self, budget_key: str) -> tuple[int, int]:
        """(segments, cost in millionths) counted in one budget day."""
        segments, cost = await self._redis.hmget(budget_key, ["segments", "cost"])
        return int(segments or 0), int(cost or 0)


def pause_now(
    destination: str,
    by: PausedBy,
    reason: str,
    *,
    until_ms: int | None = None,
    code: int | None = None,
) -> Pause:
    """A pause starting now."""
    return Pause(destination, time.time_ns() // 1_000_000, by, reason, until_ms, code)
