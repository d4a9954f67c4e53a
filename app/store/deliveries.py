"""The delivery log, and admission: dedupe + throttle + record + enqueue in one step.

Each (event, destination) pair is admitted atomically by one Lua script (a call admits up
to 100), and a whole request's calls go to Redis in one pipeline, shared with concurrent
requests (`CommandBatcher`): one round trip per ingest request at most, and no
interleaving where two copies of an event (or two events for one recipient) both pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from app.durations import format_duration
from app.store import StorageUnavailable, keys, storage_errors
from app.store.guard import GUARD_PRELUDE, GuardRefusal, guard_input, read_refusal
from app.store.pipelining import CommandBatcher
from app.store.records import (
    UNINDEXED_STATUSES,
    Decision,
    DeliveryRecord,
    DeliveryStatus,
    ExternalMessage,
    NewDelivery,
    SendOutcome,
    delivery_status_for,
    id_bound,
    id_created_ms,
    iso_ms,
    new_delivery_id,
    now_ms,
    single_line,
    twilio_status_rank,
)
from app.store.replication import NO_REPLICAS, Replication
from app.store.scripts import lua
from app.store.suppressions import Suppression, parse_suppression

# The worker's claim on a queued delivery: send it, or why not.
BeginVerdict = Literal["send", "resolve", "missing", "done", "opted_out"]
# What a recorded outcome does to the recipient's throttle window (finish_send.lua).
ThrottleAction = Literal["anchor", "release", "keep"]
# How long WAITAOF waits for the local fsync (appendfsync everysec: about a second).
_WAITAOF_TIMEOUT_MS = 2000
# What a Twilio status report did to a delivery.
StatusVerdict = Literal["applied", "stale", "missing"]

# Each script in its own .lua file beside this module (its header says what it takes and
# returns); libraries first. `unindexed`: Lua's copy of UNINDEXED_STATUSES, generated.
_STATUS_INDEXES = (
    "local unindexed = {"
    + ", ".join(f"{status} = true" for status in sorted(UNINDEXED_STATUSES))
    + "}"
)


def _changes_status(*files: str) -> str:
    """A script that changes a record's status: the history and status index libraries,
    then `files`."""
    return lua("history.lua", "transition.lua", *files, prelude=_STATUS_INDEXES)


_ADMIT = lua(
    "admission_checks.lua", "history.lua", "admit.lua", prelude=_STATUS_INDEXES + GUARD_PRELUDE
)
_PREVIEW = lua("admission_checks.lua", "admission_preview.lua", prelude=GUARD_PRELUDE)
_BEGIN_SEND = _changes_status("json_input.lua", "begin_send.lua")
_FINISH_SEND = _changes_status("json_input.lua", "finish_send.lua")
_TWILIO_STATUS = _changes_status("twilio_status.lua")
_CANCEL_SCHEDULED = _changes_status("cancel_scheduled.lua")
_IMPORT_EXTERNAL = lua("import_external.lua")
_ADOPT_SID = _changes_status("adopt_sid.lua")
_RELEASE = lua("release.lua")


CheckVerdict = Literal["pass", "duplicate", "opted_out", "throttled", "blocked_velocity", "capped"]


@dataclass(frozen=True, slots=True)
class Check:
    """A verdict of admission's checks (admission_checks.lua) and the facts behind it."""

    verdict: CheckVerdict
    original_id: str | None = None  # duplicate: the delivery that handled the event
    suppression: Suppression | None = None  # opted_out: when and how
    held_by: str | None = None  # throttled: the delivery holding the window…
    # …and when the window frees (epoch ms; None: the holder is not sent yet)
    frees_at_ms: int | None = None
    refusal: GuardRefusal | None = None  # blocked_velocity, capped: what and until when

    @classmethod
    def from_reply(cls, reply: Sequence[Any], recipient: str | None, now_ms: int) -> Check:
        """Read `check`'s reply ({verdict, …facts}) as the script gave it."""
        verdict = cast(CheckVerdict, reply[0])
        if verdict == "duplicate":
            return cls(verdict, original_id=reply[1] or None)
        if verdict == "opted_out":
            return cls(verdict, suppression=parse_suppression(recipient or "", reply[1]))
        if verdict == "throttled":
            # No expiry: the holder is not sent yet, and its window runs from its text.
            frees_at = now_ms + reply[2] if reply[2] >= 0 else None
            return cls(verdict, held_by=reply[1] or None, frees_at_ms=frees_at)
        return cls(verdict)

    def detail(self, window_ms: int) -> str | None:
        """The verdict in words, for whoever sent the event (None for "pass")."""
        if self.refusal is not None:
            return self.refusal.detail
        if self.verdict == "duplicate":
            handled = id_created_ms(self.original_id or "")
            when = f" at {iso_ms(handled)}" if handled is not None else ""
            return (
                f"this event was already handled for this destination{when}: "
                f"delivery {self.original_id}"
            )
        if self.verdict == "opted_out" and self.suppression is not None:
            return (
                f"the recipient opted out {self.suppression.how()} "
                f"(suppressed since {self.suppression.since})"
            )
        if self.verdict == "throttled" and self.frees_at_ms is None:
            window = format_duration(window_ms // 1000)
            return (
                f"one message per {window} per recipient: the window is held by delivery "
                f"{self.held_by}, not sent yet; it frees {window} after that text"
            )
        if self.verdict == "throttled" and self.frees_at_ms is not None:
            since = iso_ms(self.frees_at_ms - window_ms)
            return (
                f"one message per {format_duration(window_ms // 1000)} per recipient: "
                f"the window is held since {since} by delivery {self.held_by} and frees at "
                f"{iso_ms(self.frees_at_ms)}"
            )
        return None


@dataclass(frozen=True, slots=True)
class AdmissionPreview:
    """What admission would decide for a delivery now, read-only (the destination tester).

    `check` is the verdict leaving dedupe aside (a tester re-runs the same event);
    `duplicate_of` says whether admission would have answered "duplicate" first.
    """

    check: Check
    duplicate_of: str | None


@dataclass(frozen=True, slots=True)
class Admission:
    """What ingest answers for one (event, destination): the decision and the delivery id."""

    destination_id: str
    decision: Decision
    delivery_id: str
    detail: str | None = None
    alarm: str | None = None  # a velocity limit tripped: see GuardRefusal.alarm


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """One page of the log, newest first, and the cursor for the next (None: the last)."""

    items: list[DeliveryRecord]
    next_cursor: str | None


@storage_errors
class DeliveryLog:
    """Reads and writes delivery records; the only code that knows their Redis layout."""

    def __init__(
        self,
        redis: Redis,
        dedupe_ttl_s: int,
        retention_s: int,
        skipped_retention_s: int | None = None,
        replication: Replication = NO_REPLICAS,
    ) -> None:
        self._redis = redis
        self._replication = replication
        self._dedupe_ttl_ms = dedupe_ttl_s * 1000
        self._retention_s = retention_s
        # A skipped delivery is kept at most as long as any (its index entries go then).
        self._skipped_retention_s = min(skipped_retention_s or retention_s, retention_s)
        self._batcher = CommandBatcher(redis)
        self._admit = redis.register_script(_ADMIT)
        self._preview = redis.register_script(_PREVIEW)
        self._finish_send = redis.register_script(_FINISH_SEND)
        self._begin_send = redis.register_script(_BEGIN_SEND)
        self._twilio_status = redis.register_script(_TWILIO_STATUS)
        self._cancel_scheduled = redis.register_script(_CANCEL_SCHEDULED)
        self._import_external = redis.register_script(_IMPORT_EXTERNAL)
        self._adopt_sid = redis.register_script(_ADOPT_SID)
        self._release = redis.register_script(_RELEASE)
        self._waitaof: bool | None = None  # known after the first send (see `_durable`)

    async def admit(self, deliveries: Sequence[NewDelivery]) -> list[Admission]:
        """Dedupe, claim throttle windows, record and enqueue — one round trip for all
        (shared with whatever else this process is sending to Redis at the time)."""
        if not deliveries:
            return []
        now = now_ms()
        ids = [new_delivery_id(now) for _ in deliveries]
        retention = (self._retention_s, self._skipped_retention_s)
        keep_ms = self._retention_s * 1000  # a number texted is known this long
        items = [
            _admission_input(i, d, now, self._dedupe_ttl_ms, retention, keep_ms)
            for i, d in zip(ids, deliveries, strict=True)
        ]
        # One script call per chunk: a reply per delivery costs redis-py more than the
        # call, and a bounded chunk keeps each call short for Redis' other clients.
        chunks = [
            orjson.dumps(items[i : i + _ADMIT_CHUNK]) for i in range(0, len(items), _ADMIT_CHUNK)
        ]
        # SMS_REDIS_MIN_REPLICAS: WAIT in the same round trip, no 202 before replicas have it.
        replies = await self._evalsha(self._admit, chunks, also=self._replication.commands())
        self._replication.check(replies)
        answered_ms = now_ms()
        outcomes = (outcome for chunk in replies[: len(chunks)] for outcome in chunk)
        return [
            _admission(delivery_id, new, reply, answered_ms, now)
            for delivery_id, new, reply in zip(ids, deliveries, outcomes, strict=True)
        ]

    async def preview(self, new: NewDelivery) -> AdmissionPreview:
        """Admission's checks for `new`, read-only: the same script code, nothing claimed."""
        sendable = not new.skip_reason
        now = now_ms()
        reply = await self._preview(
            keys=[
                keys.dedupe(new.destination_id, new.event_identity),
                keys.SUPPRESSIONS,
                (new.throttle_key or "") if sendable else "",
            ],
            args=[
                (new.recipient or "") if sendable else "",
                orjson.dumps(guard_input(new, now, self._retention_s * 1000)),
                now,
            ],
        )
        with_dedupe = Check.from_reply(reply[0], new.recipient, now)
        if reply[1][0] in ("blocked_velocity", "capped"):
            refusal = read_refusal(reply[1], new, now)
            check = Check(refusal.verdict, refusal=refusal)
        else:
            check = Check.from_reply(reply[1], new.recipient, now)
        return AdmissionPreview(
            check=check,
            duplicate_of=with_dedupe.original_id if with_dedupe.verdict == "duplicate" else None,
        )

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """One record, or None when unknown or past retention."""
        fields: dict[str, str] = await self._redis.hgetall(keys.delivery(delivery_id))  # type: ignore[assignment]
        return DeliveryRecord.from_fields(delivery_id, fields) if fields else None

    async def get_many(self, delivery_ids: Iterable[str]) -> list[DeliveryRecord]:
        """Records in the order asked, in one round trip; unknown or expired ones left out."""
        return await self._fetch(delivery_ids)

    async def begin_send(
        self, delivery_id: str, *, resolve_after_s: float, resolved: int | None = None
    ) -> tuple[BeginVerdict, DeliveryRecord | None]:
        """Claim a queued delivery for sending: ``("send", record)`` once the attempt is
        recorded (durably: see `_durable`), ``("resolve", record)`` when an earlier attempt's
        outcome is unknown and Twilio must be asked first (`resolve_after_s` after that
        attempt started, its list can be trusted; `resolved`: the attempt Twilio was asked
        about and did not have: send again), ``"opted_out"`` (recorded skipped, its mark
        and window let go), or ``"missing"`` / ``"done"`` (already sent or final)."""
        payload = _json_input(
            (keys.delivery(delivery_id), keys.SUPPRESSIONS),
            (
                delivery_id,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                int(resolve_after_s * 1000),
                resolved if resolved is not None else "",
                self._skipped_retention_s,
            ),
        )
        # The attempt must be on disk before the request leaves: WAITAOF in the same round
        # trip, where the server has it; and on SMS_REDIS_MIN_REPLICAS replicas (WAIT), or a
        # failover could bring back a master that never saw it, and send it again.
        waitaof = await self._durable()
        also = [*waitaof, *self._replication.commands()]
        replies = await self._evalsha(self._begin_send, [payload], also=also)
        verdict, flat = replies[0]
        if waitaof and verdict == "send" and not replies[1][0]:
            raise StorageUnavailable(
                "Redis did not write the attempt to its append-only file in time"
            )
        if verdict == "send":
            self._replication.check(replies)
        if verdict not in ("send", "resolve", "opted_out"):
            return cast(BeginVerdict, verdict), None
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        record = DeliveryRecord.from_fields(delivery_id, fields)
        if verdict == "opted_out":
            await self._let_go(record)
            return "opted_out", None
        return cast(BeginVerdict, verdict), record

    async def _let_go(self, record: DeliveryRecord) -> None:
        """A delivery final without a text: its dedupe mark counts down from now, its
        window is freed (each only if still its own)."""
        await self._release(
            keys=[record.dedupe_key or "", record.throttle_key or "", record.cap_key or ""],
            args=[record.id, self._dedupe_ttl_ms],
        )

    async def _durable(self) -> list[tuple[Any, ...]]:
        """The command that makes a write durable before its answer, once known: WAITAOF
        (Redis >= 7.2 with appendonly on) waits until the local AOF is fsynced; without
        it, the write is as durable as `appendfsync` makes it (README: "Exactly once")."""
        if self._waitaof is None:
            info: dict[str, Any] = await self._redis.info("server")
            info.update(await self._redis.info("persistence"))
            self._waitaof = waitaof_available(info)
        return [("WAITAOF", 1, 0, _WAITAOF_TIMEOUT_MS)] if self._waitaof else []

    async def finish_send(
        self,
        record: DeliveryRecord,
        entry_id: str,
        status: DeliveryStatus,
        *,
        final: bool,
        throttle: ThrottleAction = "keep",
        detail: str | None = None,
        outcome: SendOutcome | None = None,
        retry_at_ms: int | None = None,
        suppression: bytes | None = None,
        attempt: int | None = None,
    ) -> None:
        """Record a send's outcome and acknowledge its queue entry, in one atomic step.

        `final`: the delivery's work is done (its record, dedupe mark and window start
        counting down now); else nothing of it expires. `throttle`: "anchor" (a text went
        out: the window runs from now), "release" (surely not sent: free it) or "keep".
        `outcome` is what the attempt adds to the record (its SID is indexed for status
        callbacks); `retry_at_ms` parks the delivery in the delayed queue; `suppression` (a
        suppression list value) suppresses its recipient. `attempt`: the attempt this
        answers; if the delivery has made another since, only the SID is indexed.
        """
        recipient = record.recipient or ""
        # Only a live SID can come back in a callback: test mode's are never indexed.
        twilio_sid = outcome.twilio_sid if outcome and record.mode == "live" else None
        await self._run_script(
            self._finish_send,
            (
                keys.delivery(record.id),
                keys.SEND_STREAM,
                keys.twilio_sid(twilio_sid) if twilio_sid else "",
                keys.DELAYED_SENDS if retry_at_ms is not None else "",
                record.throttle_key or "",
                keys.SUPPRESSIONS if suppression and recipient else "",
                record.dedupe_key or "",
                record.cap_key or "",
            ),
            (
                record.id,
                status,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                single_line(detail or ""),
                keys.SEND_GROUP,
                entry_id,
                self._retention_s,
                retry_at_ms if retry_at_ms is not None else "",
                recipient,
                suppression or "",
                attempt if attempt is not None else "",
                "final" if final else "pending",
                throttle,
                record.throttle_window_ms or 0,
                self._dedupe_ttl_ms,
                *(outcome.fields() if outcome else ()),
            ),
        )

    async def adopt_sid(self, delivery_id: str, sid: str) -> bool:
        """A status callback for `sid` names this delivery: if its attempt's outcome is not
        known yet (`sending`/`unknown`, no SID), record it sent with that SID. True when
        the delivery has that SID now."""
        record = await self.get(delivery_id)
        if record is None:
            return False
        adopted: int = await self._adopt_sid(
            keys=[
                keys.delivery(delivery_id),
                keys.twilio_sid(sid),
                record.dedupe_key or "",
                record.throttle_key or "",
            ],
            args=[
                delivery_id,
                sid,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                self._retention_s,
                self._dedupe_ttl_ms,
                record.throttle_window_ms or 0,
            ],
        )
        return bool(adopted)

    async def _run_script(
        self, script: AsyncScript, script_keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run a json_input.lua script once: its keys and arguments as one JSON argument."""
        [reply] = await self._evalsha(script, [_json_input(script_keys, args)])
        return reply

    async def _evalsha(
        self,
        script: AsyncScript,
        payloads: Sequence[bytes],
        also: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        """One call of `script` per JSON payload, then the commands `also`, all through the
        batcher (one round trip shared with concurrent callers), loading the script first
        if Redis lost it (a restart or a flush). Plain EVALSHA: redis-py's Script inside a
        pipeline adds a SCRIPT EXISTS round trip."""
        commands = [("EVALSHA", script.sha, 0, payload) for payload in payloads]
        commands += also
        replies = await self._batcher.execute(commands)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # Safe to repeat: a command refused with NOSCRIPT ran nothing.
            await self._redis.script_load(script.script)
            replies = await self._batcher.execute(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def delivery_id_for_sid(self, sid: str) -> str | None:
        found: str | None = await self._redis.get(keys.twilio_sid(sid))  # type: ignore[assignment]
        return found

    async def apply_twilio_status(
        self, delivery_id: str, twilio_status: str, error_code: int | None, detail: str
    ) -> StatusVerdict:
        """Record a status Twilio reported (callback, poll or cancel): ``"stale"`` when it
        would move the delivery backwards, ``"missing"`` when the record is gone."""
        status = delivery_status_for(twilio_status)
        result: str = await self._twilio_status(
            keys=[keys.delivery(delivery_id)],
            args=[
                delivery_id,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                twilio_status,
                twilio_status_rank(twilio_status),
                status or "",
                error_code if error_code is not None else "",
                single_line(detail),
            ],
        )
        return cast(StatusVerdict, result)

    async def cancel_scheduled(self, delivery_id: str) -> tuple[bool, str]:
        """Cancel a delivery we hold until its time: (True, "canceled"), else (False, status)."""
        done, status = await self._cancel_scheduled(
            keys=[keys.delivery(delivery_id), keys.DELAYED_SENDS],
            args=[delivery_id, now_ms(), keys.STATUS_INDEX_PREFIX, self._retention_s],
        )
        if done:
            record = await self.get(delivery_id)
            if record is not None:
                await self._let_go(record)
        return bool(done), str(status)

    async def import_external(self, message: ExternalMessage, destination: str) -> bool:
        """Record a message sent outside this service; False if its SID is already known."""
        delivery_id = new_delivery_id(message.sent_ms)
        imported: int = await self._import_external(
            keys=[
                keys.twilio_sid(message.sid),
                keys.delivery(delivery_id),
                keys.DELIVERY_INDEX,
                keys.DESTINATION_INDEX_PREFIX + destination,
                keys.RECIPIENT_INDEX_PREFIX + message.recipient if message.recipient else "",
            ],
            args=[
                delivery_id,
                self._retention_s,
                keys.STATUS_INDEX_PREFIX,
                "external",
                *message.fields(delivery_id, destination, now_ms()),
            ],
        )
        return bool(imported)

    async def ids_before(self, index_status: str, after: str, before: str, limit: int) -> list[str]:
        """Ids in a status index strictly between two ids, oldest first (for sweeps)."""
        ids: list[str] = await self._redis.zrangebylex(  # type: ignore[assignment]
            keys.STATUS_INDEX_PREFIX + index_status, f"({after}", f"({before}", start=0, num=limit
        )
        return ids

    async def query(
        self,
        *,
        destination: str | None = None,
        status: str | None = None,
        recipient: str | None = None,
        error_code: int | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeliveryPage:
        """Newest first. Reads the most selective index, filters the rest while paging.
        `since_ms`/`until_ms` (epoch ms, inclusive) bound the index range itself: ids are
        time-ordered."""
        if recipient:
            index = keys.RECIPIENT_INDEX_PREFIX + recipient
        elif destination:
            index = keys.DESTINATION_INDEX_PREFIX + destination
        elif status and status not in UNINDEXED_STATUSES:
            index = keys.STATUS_INDEX_PREFIX + status
        else:
            index = keys.DELIVERY_INDEX
        wanted: list[tuple[str | None, Callable[[DeliveryRecord], str | None]]] = [
            (destination, lambda r: r.destination),
            (status, lambda r: r.status),
            (recipient, lambda r: r.recipient),
            (str(error_code) if error_code is not None else None, lambda r: str(r.error_code)),
        ]
        items: list[DeliveryRecord] = []
        upper = f"({cursor}" if cursor else "+"
        if until_ms is not None and (not cursor or id_bound(until_ms + 1) < cursor):
            upper = f"({id_bound(until_ms + 1)}"
        lower = f"[{id_bound(since_ms)}" if since_ms is not None else "-"
        # Bounded scan: a sparse filter returns a short page with a cursor, never a stall.
        for _ in range(20):
            ids: list[str] = await self._redis.zrevrangebylex(  # type: ignore[assignment]
                index, upper, lower, start=0, num=limit
            )
            if not ids:
                return DeliveryPage(items, None)
            for record in await self._fetch(ids):
                if all(get(record) == value for value, get in wanted if value):
                    items.append(record)
                    if len(items) == limit:
                        return DeliveryPage(items, record.id)
            upper = f"({ids[-1]}"
            if len(ids) < limit:
                return DeliveryPage(items, None)
        return DeliveryPage(items, upper[1:])

    async def prune_indexes(self) -> int:
        """Drop index entries older than the retention (their records have expired)."""
        oldest_kept = time.time_ns() // 1_000_000 - self._retention_s * 1000
        bound = "(" + id_bound(oldest_kept)
        removed = 0
        async for index in self._redis.scan_iter(match=keys.DELIVERY_INDEX + "*", count=500):
            removed += await self._redis.zremrangebylex(index, "-", bound)
        return removed

    async def _fetch(self, ids: Iterable[str]) -> list[DeliveryRecord]:
        id_list = list(ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id in id_list:
                pipe.hgetall(keys.delivery(delivery_id))
            rows = await pipe.execute()
        # Records past retention are gone while index entries linger until pruned: skip them.
        return [
            DeliveryRecord.from_fields(i, row) for i, row in zip(id_list, rows, strict=True) if row
        ]


_ADMIT_CHUNK = 100  # deliveries per admission script call


def waitaof_available(info: dict[str, Any]) -> bool:
    """Whether a server (its INFO server + persistence) can make a write durable before
    answering: WAITAOF exists from Redis 7.2, and waits for the local AOF only when
    appendonly is on (with it off, WAITAOF 1 … is an error)."""
    try:
        version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
    except ValueError:
        return False
    return version >= (7, 2) and str(info.get("aof_enabled", "0")) == "1"


def _json_input(script_keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """A json_input.lua script's one argument: [keys, args], every arg a string."""
    strings = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
    return orjson.dumps((script_keys, strings))


def _admission(
    delivery_id: str, new: NewDelivery, reply: list[Any], now_ms: int, admitted_ms: int
) -> Admission:
    """The answer for one delivery from admit.lua's reply: {status, reason, …facts}, or
    {'duplicate', original id}. `admitted_ms`: the time admission checked it at."""
    destination, status = new.destination_id, reply[0]
    if status == "queued":
        return Admission(destination, "queued", delivery_id, new.detail)
    if status == "scheduled" and new.deferred:
        return Admission(destination, "deferred", delivery_id, new.detail)
    if status == "scheduled":
        held = f"held until {iso_ms(new.due_ms)}" if new.due_ms is not None else None
        return Admission(destination, "scheduled", delivery_id, held)
    if status == "duplicate":
        check = Check.from_reply(reply, new.recipient, now_ms)
        return Admission(destination, "duplicate", reply[1], check.detail(0))
    reason = cast(Decision, reply[1])
    if reason in ("opted_out", "throttled"):
        # {reason, …facts} is the checks' own reply.
        check = Check.from_reply(reply[1:], new.recipient, now_ms)
        return Admission(destination, reason, delivery_id, check.detail(new.throttle_window_ms))
    if reason in ("blocked_velocity", "capped"):
        refusal = read_refusal(reply[1:], new, admitted_ms)
        return Admission(destination, reason, delivery_id, refusal.detail, refusal.alarm)
    return Admission(destination, reason, delivery_id, new.detail)


def _admission_input(
    delivery_id: str,
    new: NewDelivery,
    now: int,
    dedupe_ttl_ms: int,
    retention_s: tuple[int, int],
    keep_ms: int,
) -> tuple[tuple[str, ...], tuple[str, ...], list[str], dict[str, Any]]:
    """One delivery's [keys, args, record, guard] for the admission script."""
    script_keys = (
        keys.dedupe(new.destination_id, new.event_identity),
        new.throttle_key or "",
        keys.delivery(delivery_id),
        keys.SEND_STREAM,
        keys.DELIVERY_INDEX,
        keys.DESTINATION_INDEX_PREFIX + new.destination_id,
        keys.RECIPIENT_INDEX_PREFIX + new.recipient if new.recipient else "",
        keys.SUPPRESSIONS,
        keys.DELAYED_SENDS,
    )
    args = (
        delivery_id,
        str(dedupe_ttl_ms),
        str(new.throttle_window_ms),
        str(retention_s[0]),
        str(now),
        "skipped" if new.skip_reason else "queued",
        new.skip_reason or "",
        keys.STATUS_INDEX_PREFIX,
        new.recipient or "",
        str(new.due_ms) if new.due_ms is not None else "",
        str(retention_s[1]),
    )
    return script_keys, args, new.fields(), guard_input(new, now, keep_ms)
