"""Sender pacing: each live send waits for its sender's turn, shared by every worker
through Redis, and Twilio's slow-down codes cut the sender's rate (AIMD).

Rates are in segments per second (`senders:`, app/senders.py). A send reserves its
segments on the sender's schedule (app/store/pace.lua: GCRA, one script call) and is told
when it may go. A fast sender's reservations are made in leases — a tenth of a second of
its rate at once, handed out here — so that pacing a short code costs about one script
call per lease, not per message. A slow-down code (catalog action `retry_slower`: 20429,
21611, 30001, 30022, 63017, …) halves the sender's rate, at most once per
`CUT_COOLDOWN_MS`, down to `FLOOR` of its declared rate; each successful send gives
`STEP` of it back (additive increase), and a sender idle for an hour starts afresh.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.metrics import Metrics
from app.senders import undeclared_rate
from app.store.pacing import Reservation, SenderPacing
from app.store.records import now_ms

# AIMD: the factor on the declared rate.
CUT = 0.5  # multiplied by this on a slow-down code…
FLOOR = 0.125  # …never under an eighth of the declared rate…
CUT_COOLDOWN_MS = 2000  # …and at most once per 2 s (the answers of one burst cut once)
STEP = 0.05  # each successful send adds back 5% of the declared rate

LEASE_S = 0.1  # a fast sender's reservations: this long of its rate at once


@dataclass(slots=True)
class _Lease:
    """Segments reserved in Redis and handed out here, one message after another."""

    next_ms: float
    end_ms: float
    interval_ms: float  # one segment
    rate: float


class SenderPacer:
    """Reservations on senders' schedules for one worker process, and the AIMD signals."""

    def __init__(
        self, store: SenderPacing, metrics: Metrics, default_rate: float | None = None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._default_rate = default_rate  # SMS_SENDER_DEFAULT_RATE
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._successes: dict[str, int] = {}  # not yet reported to Redis

    def default_rate(self, sender: str) -> float:
        """The rate of `sender` unless `senders:` declares it."""
        return undeclared_rate(sender, self._default_rate)

    async def reserve(self, sender: str, segments: int, deadline_ms: int | None) -> Reservation:
        """Reserve `segments` on `sender`'s schedule: when they may go (refused, nothing
        reserved, when that would be past `deadline_ms`)."""
        taken = self._from_lease(sender, segments, deadline_ms)
        if taken is not None:
            return taken
        lock = self._locks.setdefault(sender, asyncio.Lock())
        async with lock:
            taken = self._from_lease(sender, segments, deadline_ms)
            if taken is not None:
                return taken
            reservation = await self._store.reserve(
                sender,
                self.default_rate(sender),
                segments,
                now_ms(),
                deadline_ms=deadline_ms,
                successes=self._successes.pop(sender, 0),
                step=STEP,
                # Lease only where a tenth of a second holds a few messages (decided in
                # Redis, at the rate now): a slow sender's unused lease would be capacity
                # no other worker could use.
                lease_ms=int(LEASE_S * 1000),
            )
            self._learned(sender, reservation.rate)
            if not reservation.refused and reservation.segments > segments:
                interval = 1000 / reservation.rate
                self._leases[sender] = _Lease(
                    reservation.slot_ms + segments * interval,
                    reservation.slot_ms + reservation.segments * interval,
                    interval,
                    reservation.rate,
                )
            return reservation

    def _from_lease(
        self, sender: str, segments: int, deadline_ms: int | None
    ) -> Reservation | None:
        lease = self._leases.get(sender)
        if lease is None:
            return None
        need = segments * lease.interval_ms
        if lease.next_ms + need > lease.end_ms + 1e-6 or lease.end_ms < now_ms():
            del self._leases[sender]  # spent, or its time is past
            return None
        if deadline_ms is not None and lease.next_ms > deadline_ms:
            return Reservation(int(lease.next_ms), lease.rate, refused=True)
        slot = lease.next_ms
        lease.next_ms += need
        return Reservation(int(slot), lease.rate)

    def succeeded(self, sender: str) -> None:
        """A send went through: its sender earns back some rate (told with its next
        reservation, so that a success costs no call of its own)."""
        self._successes[sender] = self._successes.get(sender, 0) + 1

    async def slow_down(self, sender: str) -> tuple[float, bool]:
        """Twilio said the sender goes too fast: cut its rate (once per cooldown). Its
        rate now, and whether this call cut it."""
        self._leases.pop(sender, None)
        self._successes.pop(sender, None)
        rate, cut = await self._store.slow(
            sender,
            self.default_rate(sender),
            now_ms(),
            multiplier=CUT,
            floor=FLOOR,
            cooldown_ms=CUT_COOLDOWN_MS,
        )
        self._learned(sender, rate)
        return rate, cut

    def _learned(self, sender: str, rate: float) -> None:
        self._metrics.sender_rate(sender, rate)
