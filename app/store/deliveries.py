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
from app.store.recipient_index import recipient_ids, shard_of
from app.store.records import (
    NO_BUDGET_ARGS,
    UNINDEXED_STATUSES,
    Decision,
    DeliveryRecord,
    DeliveryStatus,
    ExternalMessage,
    NewDelivery,
    SendOutcome,
    SkipReason,
    dedupe_buckets,
    delivery_id_of_mark,
    delivery_status_for,
    id_bound,
    id_created_ms,
    iso_ms,
    mocked_sid,
    new_delivery_id,
    now_ms,
    provider_status_rank,
    single_line,
    skipped_entry_id,
    skipped_id,
)
from app.store.replication import NO_REPLICAS, Replication
from app.store.scripts import lua
from app.store.suppressions import Suppression, parse_suppression

# The worker's claim on a queued delivery: send it, or why not.
BeginVerdict = Literal["send", "resolve", "missing", "done", "opted_out", "paused"]
# What a recorded outcome does to the recipient's throttle window (finish_send.lua).
ThrottleAction = Literal["anchor", "release", "keep"]
# How long WAITAOF waits for the local fsync (appendfsync everysec: about a second).
_WAITAOF_TIMEOUT_MS = 2000
# What a provider's status report did to a delivery.
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
    "admission_checks.lua",
    "destination_gate.lua",
    "history.lua",
    "admit.lua",
    prelude=_STATUS_INDEXES + GUARD_PRELUDE,
)
_PREVIEW = lua(
    "admission_checks.lua",
    "destination_gate.lua",
    "admission_preview.lua",
    prelude=GUARD_PRELUDE,
)
_BEGIN_SEND = _changes_status("json_input.lua", "destination_gate.lua", "begin_send.lua")
_FINISH_SEND = _changes_status("json_input.lua", "dedupe_marks.lua", "finish_send.lua")
_PROVIDER_STATUS = _changes_status("provider_status.lua")
_CANCEL_SCHEDULED = _changes_status("cancel_scheduled.lua")
_IMPORT_EXTERNAL = lua("import_external.lua")
_ADOPT_PROVIDER_ID = _changes_status("dedupe_marks.lua", "adopt_provider_id.lua")
_RELEASE = lua("dedupe_marks.lua", "release.lua")
_HOLD_SEND = _changes_status("json_input.lua", "hold_send.lua")


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
            return cls(verdict, original_id=delivery_id_of_mark(reply[1]) or None)
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
                f"the recipient {self.suppression.why()} "
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
    `duplicate_of` says whether admission would have answered "duplicate" first; `gate`:
    the destination's own verdict when the checks pass ("destination_paused" or
    "over_budget", and its detail), None when it would admit.
    """

    check: Check
    duplicate_of: str | None
    gate: tuple[Decision, str] | None = None


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
        self._provider_status = redis.register_script(_PROVIDER_STATUS)
        self._cancel_scheduled = redis.register_script(_CANCEL_SCHEDULED)
        self._import_external = redis.register_script(_IMPORT_EXTERNAL)
        self._adopt_provider_id = redis.register_script(_ADOPT_PROVIDER_ID)
        self._release = redis.register_script(_RELEASE)
        self._hold_send = redis.register_script(_HOLD_SEND)
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
        buckets, _ = dedupe_buckets(
            new.destination_id, new.event_identity, now, self._dedupe_ttl_ms
        )
        reply = await self._preview(
            keys=[
                keys.dedupe(new.destination_id, new.event_identity),
                keys.SUPPRESSIONS,
                (new.throttle_key or "") if sendable else "",
                keys.PAUSES,
                new.budget.key if new.budget else "",
                *buckets,
            ],
            args=[
                (new.recipient or "") if sendable else "",
                new.event_identity,
                orjson.dumps(guard_input(new, now, self._retention_s * 1000)),
                now,
                new.destination_id,
                *(new.budget.args() if new.budget else NO_BUDGET_ARGS),
            ],
        )
        with_dedupe = Check.from_reply(reply[0], new.recipient, now)
        verdict = reply[1][0]
        gate: tuple[Decision, str] | None = None
        if verdict in ("blocked_velocity", "capped"):
            refusal = read_refusal(reply[1], new, now)
            check = Check(refusal.verdict, refusal=refusal)
        elif verdict in ("destination_paused", "over_budget"):
            check = Check("pass")  # the checks pass; the destination's gate does not
            gate = (verdict, _gate_detail(new.destination_id, verdict, reply[1][1]))
        else:
            check = Check.from_reply(reply[1], new.recipient, now)
        return AdmissionPreview(
            check=check,
            duplicate_of=with_dedupe.original_id if with_dedupe.verdict == "duplicate" else None,
            gate=gate,
        )

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """One record, or None when unknown or past retention."""
        found = await self._fetch([delivery_id])
        return found[0] if found else None

    async def get_many(self, delivery_ids: Iterable[str]) -> list[DeliveryRecord]:
        """Records in the order asked, in one round trip; unknown or expired ones left out."""
        return await self._fetch(delivery_ids)

    async def begin_send(
        self, delivery_id: str, *, resolve_after_s: float, resolved: int | None = None
    ) -> tuple[BeginVerdict, DeliveryRecord | None]:
        """Claim a queued delivery for sending: ``("send", record)`` once the attempt is
        recorded (durably: see `_durable`), ``("resolve", record)`` when an earlier attempt's
        outcome is unknown and the provider must be asked first (`resolve_after_s` after
        that attempt started, its list can be trusted; `resolved`: the attempt the provider
        was asked about and did not have: send again), ``"opted_out"`` (recorded skipped, its mark
        and window let go), or ``"missing"`` / ``"done"`` (already sent or final)."""
        payload = _json_input(
            (keys.delivery(delivery_id), keys.SUPPRESSIONS, keys.PAUSES),
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
        if verdict not in ("send", "resolve", "opted_out", "paused"):
            return cast(BeginVerdict, verdict), None
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        record = DeliveryRecord.from_fields(delivery_id, fields)
        if verdict == "opted_out":
            await self._let_go(record)
            return "opted_out", None
        return cast(BeginVerdict, verdict), record

    async def _let_go(self, record: DeliveryRecord) -> None:
        """A delivery final without a text: its dedupe mark moves to its bucket (its time
        counts from now), its window is freed (each only if still its own)."""
        bucket, expires_ms = self._mark_bucket(record)
        await self._release(
            keys=[
                record.dedupe_key or "",
                record.throttle_key or "",
                record.cap_key or "",
                bucket,
            ],
            args=[record.id, record.event_identity or "", expires_ms],
        )

    def _mark_bucket(self, record: DeliveryRecord) -> tuple[str, int]:
        """Where a delivery's dedupe mark goes if it becomes final now, and when that
        bucket expires (epoch ms)."""
        buckets, expires_ms = dedupe_buckets(
            record.destination, record.event_identity or "", now_ms(), self._dedupe_ttl_ms
        )
        return buckets[0], expires_ms

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
        # Only a live id can come back in a callback: test mode's are never indexed.
        provider_id = outcome.provider_id if outcome and record.mode == "live" else None
        bucket, bucket_expires_ms = self._mark_bucket(record)
        # A mocked send's id (derived from the delivery's) and status are not stored.
        derived = status == "mocked" and outcome and outcome.provider_id == mocked_sid(record.id)
        await self._run_script(
            self._finish_send,
            (
                keys.delivery(record.id),
                keys.SEND_STREAM,
                keys.provider_id(provider_id) if provider_id else "",
                keys.DELAYED_SENDS if retry_at_ms is not None else "",
                record.throttle_key or "",
                keys.SUPPRESSIONS if suppression and recipient else "",
                record.dedupe_key or "",
                record.cap_key or "",
                bucket,
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
                bucket_expires_ms,
                record.event_identity or "",
                *(outcome.fields() if outcome and not derived else ()),
            ),
        )

    async def hold_send(
        self,
        record: DeliveryRecord,
        entry_id: str,
        status: Literal["queued", "scheduled", "skipped"],
        *,
        detail: str,
        due_ms: int | None = None,
        reason: SkipReason | None = None,
        paced_ms: int | None = None,
    ) -> None:
        """Take back a claimed attempt that is not made (quiet hours, sender pacing): its
        count undone, the delivery parked until `due_ms` (``queued`` or ``scheduled``) or
        final unsent (``skipped`` for `reason`: its mark counts down, its window is freed),
        and its queue entry acknowledged, atomically. `paced_ms`: the slot reserved on its
        sender's schedule for the same attempt, kept in the record."""
        final = due_ms is None
        await self._run_script(
            self._hold_send,
            (
                keys.delivery(record.id),
                keys.SEND_STREAM,
                "" if final else keys.DELAYED_SENDS,
                (record.throttle_key or "") if final else "",
                (record.dedupe_key or "") if final else "",
            ),
            (
                record.id,
                status,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                single_line(detail),
                keys.SEND_GROUP,
                entry_id,
                record.attempts,
                due_ms if due_ms is not None else "",
                reason or "",
                f"{record.attempts}:{paced_ms}" if paced_ms is not None else "",
                self._skipped_retention_s,
                self._dedupe_ttl_ms,
            ),
        )

    async def adopt_provider_id(self, delivery_id: str, provider_id: str) -> bool:
        """A status callback for message `provider_id` names this delivery: if its attempt's
        outcome is not known yet (`sending`/`unknown`, no id), record it sent with that id.
        True when the delivery has that id now."""
        record = await self.get(delivery_id)
        if record is None:
            return False
        bucket, bucket_expires_ms = self._mark_bucket(record)
        adopted: int = await self._adopt_provider_id(
            keys=[
                keys.delivery(delivery_id),
                keys.provider_id(provider_id),
                record.dedupe_key or "",
                record.throttle_key or "",
                bucket,
            ],
            args=[
                delivery_id,
                provider_id,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                self._retention_s,
                bucket_expires_ms,
                record.throttle_window_ms or 0,
                record.event_identity or "",
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

    async def delivery_id_for(self, provider_id: str) -> str | None:
        """The delivery whose message has this id at the provider (None: not ours)."""
        found: str | None = await self._redis.get(keys.provider_id(provider_id))  # type: ignore[assignment]
        return found

    async def apply_provider_status(
        self, delivery_id: str, provider_status: str, error_code: int | None, detail: str
    ) -> StatusVerdict:
        """Record a status the provider reported (callback, poll or cancel): ``"stale"``
        when it would move the delivery backwards, ``"missing"`` when the record is gone."""
        status = delivery_status_for(provider_status)
        result: str = await self._provider_status(
            keys=[keys.delivery(delivery_id)],
            args=[
                delivery_id,
                now_ms(),
                keys.STATUS_INDEX_PREFIX,
                provider_status,
                provider_status_rank(provider_status),
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
        """Record a message sent outside this service; False if its id is already known."""
        delivery_id = new_delivery_id(message.sent_ms)
        shard, shard_expires_ms = (
            shard_of(message.recipient, message.sent_ms, self._retention_s * 1000)
            if message.recipient
            else ("", 0)
        )
        imported: int = await self._import_external(
            keys=[
                keys.provider_id(message.provider_id),
                keys.delivery(delivery_id),
                keys.LOGGED_DESTINATIONS,
                keys.DESTINATION_INDEX_PREFIX + destination,
                shard,
            ],
            args=[
                delivery_id,
                self._retention_s,
                keys.STATUS_INDEX_PREFIX,
                "external",
                destination,
                message.recipient,
                shard_expires_ms,
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
        """Newest first. Reads the most selective index (for all deliveries: every
        destination's) and the skipped log side by side, merged by id, and filters the rest
        while paging. `since_ms`/`until_ms` (epoch ms, inclusive) bound the ranges
        themselves: ids are time-ordered."""
        indexes: list[str] = []
        listed: list[str] | None = None  # the recipient's ids, read once
        if recipient:
            listed = await recipient_ids(self._redis, recipient, self._retention_s * 1000, since_ms)
        elif destination:
            indexes = [keys.DESTINATION_INDEX_PREFIX + destination]
        elif status and status not in UNINDEXED_STATUSES:
            indexes = [keys.STATUS_INDEX_PREFIX + status]
        else:
            indexes = await self.destination_indexes()
        # Skipped deliveries are in no index: their log is read and filtered like the rest.
        read_skipped = status in (None, "skipped")
        wanted: list[tuple[str | None, Callable[[DeliveryRecord], str | None]]] = [
            (destination, lambda r: r.destination),
            (status, lambda r: r.status),
            (recipient, lambda r: r.recipient),
            (str(error_code) if error_code is not None else None, lambda r: str(r.error_code)),
        ]
        items: list[DeliveryRecord] = []
        upper = cursor  # exclusive
        if until_ms is not None and (not upper or id_bound(until_ms + 1) < upper):
            upper = id_bound(until_ms + 1)
        # Bounded scan: a sparse filter returns a short page with a cursor, never a stall.
        for _ in range(20):
            pages, skipped = await self._page(indexes, read_skipped, upper, since_ms, limit)
            if listed is not None:
                pages.append([i for i in listed if not upper or i < upper][:limit])
            # A source that filled its page may hold more above the others' next ids: only
            # what is above its last id is complete in this round.
            sources = [*pages, [r.id for r in skipped]]
            full = [ids[-1] for ids in sources if len(ids) == limit]
            floor = max(full) if full else ""
            records = await self._fetch([i for ids in pages for i in ids if i >= floor])
            merged = sorted(
                [*records, *(r for r in skipped if r.id >= floor)], key=lambda r: r.id, reverse=True
            )
            for record in merged:
                if all(get(record) == value for value, get in wanted if value):
                    items.append(record)
                    if len(items) == limit:
                        return DeliveryPage(items, record.id)
            if not floor:
                return DeliveryPage(items, None)
            upper = floor
        return DeliveryPage(items, upper)

    async def _page(
        self,
        indexes: Sequence[str],
        read_skipped: bool,
        upper: str | None,
        since_ms: int | None,
        limit: int,
    ) -> tuple[list[list[str]], list[DeliveryRecord]]:
        """Up to `limit` ids of each index and skipped deliveries, newest first, below
        `upper` (an id) and from `since_ms` on, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrevrangebylex(
                    index,
                    f"({upper}" if upper else "+",
                    f"[{id_bound(since_ms)}" if since_ms is not None else "-",
                    start=0,
                    num=limit,
                )
            end = _entries_below(upper) if read_skipped else None
            if end is not None:
                start = str(max(since_ms, 0)) if since_ms is not None else "-"
                pipe.xrevrange(keys.SKIPPED_LOG, end, start, count=limit)
            replies = await pipe.execute()
        entries: list[tuple[str, dict[str, str]]] = replies[-1] if end is not None else []
        pages: list[list[str]] = replies[: len(indexes)]
        return pages, [DeliveryRecord.from_skipped(skipped_id(e), f) for e, f in entries]

    async def destination_indexes(self) -> list[str]:
        """Every destination's index: together, the log of every delivery but skipped
        ones (a listing of all merges them)."""
        logged: set[str] = await self._redis.smembers(keys.LOGGED_DESTINATIONS)  # type: ignore[assignment]
        return [keys.DESTINATION_INDEX_PREFIX + d for d in sorted(logged)]

    async def migrate(self) -> None:
        """Bring a log written by an earlier version to this layout (idempotent; run at
        start-up): the one index of every delivery gives way to the set of destinations
        whose indexes a listing of all merges."""
        if not await self._redis.exists(keys.DELIVERY_INDEX):
            return
        async for index in self._redis.scan_iter(
            match=keys.DESTINATION_INDEX_PREFIX + "*", count=1000, _type="zset"
        ):
            destination = index.removeprefix(keys.DESTINATION_INDEX_PREFIX)
            await self._redis.sadd(keys.LOGGED_DESTINATIONS, destination)
        await self._redis.unlink(keys.DELIVERY_INDEX)

    async def prune_indexes(self) -> int:
        """Drop index entries older than the retention (their records have expired);
        migrate a log an earlier version wrote, if not done yet."""
        await self.migrate()
        oldest_kept = time.time_ns() // 1_000_000 - self._retention_s * 1000
        bound = "(" + id_bound(oldest_kept)
        removed = 0
        async for index in self._redis.scan_iter(match=keys.DELIVERY_INDEX + "*", count=500):
            removed += await self._redis.zremrangebylex(index, "-", bound)
        return removed

    async def _fetch(self, ids: Iterable[str]) -> list[DeliveryRecord]:
        """Records in the order asked, in one round trip: a record's hash, else (an id
        naming one) its skipped log entry; gone ones (past retention) left out."""
        id_list = list(ids)
        entries = [skipped_entry_id(i) for i in id_list]
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id, entry in zip(id_list, entries, strict=True):
                pipe.hgetall(keys.delivery(delivery_id))
                if entry:
                    pipe.xrange(keys.SKIPPED_LOG, entry, entry)
            replies = iter(await pipe.execute())
        found: list[DeliveryRecord] = []
        for delivery_id, entry in zip(id_list, entries, strict=True):
            row: dict[str, str] = next(replies)
            logged: list[tuple[str, dict[str, str]]] = next(replies) if entry else []
            # Records past retention are gone while index entries linger until pruned.
            if row:
                found.append(DeliveryRecord.from_fields(delivery_id, row))
            elif logged:
                found.append(DeliveryRecord.from_skipped(delivery_id, logged[0][1]))
        return found


_ADMIT_CHUNK = 100  # deliveries per admission script call


def _entries_below(upper: str | None) -> str | None:
    """XREVRANGE's end for the skipped log entries whose ids sort below the id `upper`
    (None: no entry can)."""
    if not upper:
        return "+"
    entry = skipped_entry_id(upper)
    if entry is None:
        ms = id_created_ms(upper)
        if ms is None:
            return "+"
        if upper[15:] > "8":  # an id from before, sorting after its ms's every entry
            return str(ms)
        entry = f"{ms}-0"
    return None if entry == "0-0" else "(" + entry


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
        return Admission(destination, "duplicate", check.original_id or "", check.detail(0))
    # Skipped: {'skipped', reason, …facts, entry}; its id names its skipped log entry.
    reason, skipped = cast(Decision, reply[1]), skipped_id(reply[-1])
    if reason in ("destination_paused", "over_budget"):
        detail = _gate_detail(destination, reason, reply[2])
        return Admission(destination, reason, skipped, detail)
    if reason in ("opted_out", "throttled"):
        # {reason, …facts} is the checks' own reply.
        check = Check.from_reply(reply[1:], new.recipient, now_ms)
        return Admission(destination, reason, skipped, check.detail(new.throttle_window_ms))
    if reason in ("blocked_velocity", "capped"):
        refusal = read_refusal(reply[1:-1], new, admitted_ms)
        return Admission(destination, reason, skipped, refusal.detail, refusal.alarm)
    return Admission(destination, reason, skipped, new.detail)


def _admission_input(
    delivery_id: str,
    new: NewDelivery,
    now: int,
    dedupe_ttl_ms: int,
    retention_s: tuple[int, int],
    keep_ms: int,
) -> tuple[tuple[str, ...], tuple[str, ...], list[str], dict[str, Any]]:
    """One delivery's [keys, args, record, guard] for the admission script."""
    buckets, bucket_expires_ms = dedupe_buckets(
        new.destination_id, new.event_identity, now, dedupe_ttl_ms
    )
    fields = new.fields()
    recipient_shard, shard_expires_ms = (
        shard_of(new.recipient, now, retention_s[0] * 1000) if new.recipient else ("", 0)
    )
    script_keys = (
        keys.dedupe(new.destination_id, new.event_identity),
        new.throttle_key or "",
        keys.delivery(delivery_id),
        keys.SEND_STREAM,
        keys.LOGGED_DESTINATIONS,
        keys.DESTINATION_INDEX_PREFIX + new.destination_id,
        recipient_shard,
        keys.SUPPRESSIONS,
        keys.DELAYED_SENDS,
        keys.SKIPPED_LOG,
        *buckets,
        keys.PAUSES,
        new.budget.key if new.budget else "",
    )
    args = (
        delivery_id,
        str(new.throttle_window_ms),
        str(now),
        "skipped" if new.skip_reason else "queued",
        new.skip_reason or "",
        keys.STATUS_INDEX_PREFIX,
        new.recipient or "",
        str(new.due_ms) if new.due_ms is not None else "",
        new.event_identity,
        str(bucket_expires_ms),
        str(now - retention_s[1] * 1000),
        # A delivery admission skips keeps every field but the window it would have claimed.
        str(len(fields) - 4 if new.claims_window else len(fields)),
        new.destination_id,
        str(shard_expires_ms),
        *(new.budget.args() if new.budget else NO_BUDGET_ARGS),
    )
    return script_keys, args, fields, guard_input(new, now, keep_ms)


def _gate_detail(destination: str, verdict: str, facts: str) -> str:
    """A gate verdict's detail (destination_gate.lua's facts: the pause's JSON)."""
    from app.store.pauses import over_budget_detail, parse_pause

    if verdict == "over_budget":
        return over_budget_detail(destination, facts)
    return parse_pause(destination, facts).describe()
