"""Sender pacing in Redis, shared by every worker: the declared rates, each sender's
schedule (GCRA: when its next segment may go) and AIMD factor, changed atomically by one
short script (pace.lua) per reservation or cut."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys, storage_errors
from app.store.scripts import lua

_PACE = lua("pace.lua")


@dataclass(frozen=True, slots=True)
class Reservation:
    """Segments reserved on a sender's schedule, from `slot_ms` on (epoch ms); `refused`:
    nothing reserved, the slot would have been past the deadline."""

    slot_ms: int
    rate: float  # the sender's rate now, segments per second
    refused: bool = False
    segments: int = 0  # reserved (a lease: more than asked)


@storage_errors
class SenderPacing:
    """Declared rates, reservations and AIMD cuts, one script call each."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pace = redis.register_script(_PACE)

    async def publish(self, rates: Mapping[str, float]) -> None:
        """Replace the declared rates (`senders:`) every worker paces to."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.SENDER_RATES)
            if rates:
                pipe.hset(keys.SENDER_RATES, mapping={s: repr(r) for s, r in rates.items()})
            await pipe.execute()

    async def reserve(
        self,
        sender: str,
        default_rate: float,
        segments: int,
        now_ms: int,
        *,
        deadline_ms: int | None = None,
        successes: int = 0,
        step: float = 0.0,
        lease_ms: int = 0,
    ) -> Reservation:
        """Reserve `segments` on `sender`'s schedule (at `default_rate` segments per second
        unless declared), after adding `successes` × `step` back to its factor; refused
        (nothing reserved) when the slot would be past `deadline_ms`. `lease_ms`: reserve
        that long of the sender's rate at once when it holds at least twice `segments`."""
        slot, milli, would, reserved = await self._pace(
            keys=[keys.sender_pace(sender), keys.SENDER_RATES],
            args=[
                "reserve",
                sender,
                repr(default_rate),
                now_ms,
                segments,
                deadline_ms if deadline_ms is not None else "",
                successes,
                repr(step),
                lease_ms,
            ],
        )
        if slot < 0:
            return Reservation(int(would), milli / 1000, refused=True)
        return Reservation(int(slot), milli / 1000, segments=int(reserved))

    async def slow(
        self,
        sender: str,
        default_rate: float,
        now_ms: int,
        *,
        multiplier: float,
        floor: float,
        cooldown_ms: int,
    ) -> tuple[float, bool]:
        """Multiply `sender`'s factor by `multiplier` (not under `floor`), unless it was
        cut less than `cooldown_ms` ago: (its rate now, whether this call cut it)."""
        milli, cut = await self._pace(
            keys=[keys.sender_pace(sender), keys.SENDER_RATES],
            args=[
                "slow",
                sender,
                repr(default_rate),
                now_ms,
                repr(multiplier),
                repr(floor),
                cooldown_ms,
            ],
        )
        return milli / 1000, bool(cut)

    async def rates(self) -> dict[str, float]:
        """The declared rates, as published."""
        stored: dict[str, str] = await self._redis.hgetall(keys.SENDER_RATES)  # type: ignore[assignment]
        return {sender: float(rate) for sender, rate in stored.items()}
