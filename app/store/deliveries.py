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

from app.store import keys, storage_errors
from app.store.pipelining import CommandBatcher
from app.store.records import (
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
    now_iso,
    twilio_status_rank,
)
from app.store.suppressions import Suppression, parse_suppression

# The worker's claim on a queued delivery: send it, or why not.
BeginVerdict = Literal["send", "missing", "done", "opted_out"]
# What a Twilio status report did to a delivery.
StatusVerdict = Literal["applied", "stale", "missing"]

# The hot-path scripts take one argument, a JSON array [keys, args, …], not dozens of
# arguments: redis-py encodes arguments one by one in Python, which cost more than all the
# rest of ingest. (Keys are not declared to Redis: like every multi-key script here, these
# need a standalone or Sentinel-managed Redis, not Cluster.)
_JSON_INPUT = """
local input = cjson.decode(ARGV[1])
local KEYS, ARGV = input[1], input[2]
"""

# Shared by every script that changes a delivery's status: appends to the history and
# moves the id between status indexes. `extra` is a flat list of field/value pairs.
_LUA_TRANSITION = """
local function transition(key, id, status, now, prefix, detail, extra)
  local old = redis.call('HGET', key, 'status')
  local history = cjson.decode(redis.call('HGET', key, 'history') or '[]')
  local entry = {status = status, at = now}
  if detail ~= '' then entry.detail = detail end
  table.insert(history, entry)
  redis.call('HSET', key, 'status', status, 'updated_at', now,
             'history', cjson.encode(history), unpack(extra))
  if old ~= status then
    if old then redis.call('ZREM', prefix .. old, id) end
    redis.call('ZADD', prefix .. status, 0, id)
  end
  return old
end
"""

# Admission's checks, in order: dedupe, suppression, throttle. Shared by admission, which
# claims the dedupe mark and the throttle window as it checks (SET NX), and by the preview
# (the destination tester), which only reads: one piece of code, so they cannot drift.
# A '' key or recipient skips its check. Returns {verdict, …facts}:
#   {'duplicate', original delivery id}    {'opted_out', the suppression's JSON}
#   {'throttled', holder's delivery id, ms until the window frees}    {'pass'}
_CHECKS = """
local function check(claim, id, dedupe, dedupe_ms, suppressions, recipient, throttle, window_ms)
  if dedupe ~= '' then
    if claim then
      if not redis.call('SET', dedupe, id, 'NX', 'PX', dedupe_ms) then
        return {'duplicate', redis.call('GET', dedupe) or ''}
      end
    else
      local original = redis.call('GET', dedupe)
      if original then return {'duplicate', original} end
    end
  end
  if recipient ~= '' then
    local suppressed = redis.call('HGET', suppressions, recipient)
    if suppressed then return {'opted_out', suppressed} end
  end
  if throttle ~= '' then
    local free
    if claim then
      free = redis.call('SET', throttle, id, 'NX', 'PX', window_ms)
    else
      free = redis.call('EXISTS', throttle) == 0
    end
    if not free then
      return {'throttled', redis.call('GET', throttle) or '', redis.call('PTTL', throttle)}
    end
  end
  return {'pass'}
end
"""

# Admits a chunk of deliveries, each atomically. Returns {status, reason, …facts} for each
# (facts as `check` gives them; a duplicate: {'duplicate', original id}).
# Input: one JSON array of deliveries, each [keys, args, record].
# keys: dedupe, throttle ('' = none), record, stream, index, destination index,
#       recipient index ('' = none), suppression list, delayed sends
# args: id, dedupe ttl ms, throttle window ms, retention s, now, status, reason,
#       status index prefix, recipient ('' = none), due ms ('' = now)
# record: the record's fields as a flat [name, value, …] list, every value a string
_ADMIT = (
    _CHECKS
    + """
local function admit(KEYS, ARGV, fields)
local status, reason = ARGV[6], ARGV[7]
-- A delivery the pipeline already skipped is only deduped.
local sendable = status == 'queued'
local checked = check(true, ARGV[1], KEYS[1], ARGV[2], KEYS[8],
                      sendable and ARGV[9] or '', sendable and KEYS[2] or '', ARGV[3])
if checked[1] == 'duplicate' then return checked end
if checked[1] ~= 'pass' then status, reason = 'skipped', checked[1] end
if status == 'queued' and ARGV[10] ~= '' then status = 'scheduled' end
local entry = {status = status, at = ARGV[5]}
if reason ~= '' then entry.reason = reason end
redis.call('HSET', KEYS[3], 'status', status, 'reason', reason,
           'history', cjson.encode({entry}), unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
redis.call('ZADD', KEYS[6], 0, ARGV[1])
if KEYS[7] ~= '' then redis.call('ZADD', KEYS[7], 0, ARGV[1]) end
redis.call('ZADD', ARGV[8] .. status, 0, ARGV[1])
if status == 'queued' then redis.call('XADD', KEYS[4], '*', 'delivery', ARGV[1]) end
if status == 'scheduled' then redis.call('ZADD', KEYS[9], ARGV[10], ARGV[1]) end
return {status, reason, checked[2], checked[3]}
end

local results = {}
for i, delivery in ipairs(cjson.decode(ARGV[1])) do
  results[i] = admit(delivery[1], delivery[2], delivery[3])
end
return results
"""
)

# Admission's checks for one delivery, read-only: {with dedupe, without dedupe} (the
# tester reports a duplicate but still shows what admission would decide next).
# KEYS: dedupe, suppression list, throttle ('' = none).  ARGV: recipient ('' = none).
_PREVIEW = (
    _CHECKS
    + """
return {check(false, '', KEYS[1], 0, KEYS[2], ARGV[1], KEYS[3], 0),
        check(false, '', '', 0, KEYS[2], ARGV[1], KEYS[3], 0)}
"""
)

# The worker's last step for a delivery, atomically: record the outcome, index the Twilio
# SID, park a retry, free the throttle window (compare-and-delete), suppress a number
# Twilio says opted out, and acknowledge the queue entry.
# KEYS: record, stream, SID key, delayed sends, throttle, suppression list ('' = skip each)
# ARGV: id, new status, now, status index prefix, history detail ('' = none), group,
#       entry id, retention s, retry due ms, recipient, suppression value, then
#       field/value pairs to set.
_FINISH_SEND = (
    _JSON_INPUT
    + _LUA_TRANSITION
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  transition(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], {unpack(ARGV, 12)})
end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[8]) end
if KEYS[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1]) end
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
if KEYS[6] ~= '' then redis.call('HSETNX', KEYS[6], ARGV[10], ARGV[11]) end
redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
return 1
"""
)

# The worker's first step for a queued delivery, in one round trip: skip what is gone or
# done, skip (as opted_out) a recipient who opted out since admission, else mark it
# sending. KEYS: record, suppression list.  ARGV: id, now, status index prefix.
# Returns {verdict, record fields as a flat list}.
_BEGIN_SEND = (
    _JSON_INPUT
    + _LUA_TRANSITION
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', {}} end
local sid = redis.call('HGET', KEYS[1], 'twilio_sid')
if status == 'sent' or status == 'mocked' or status == 'failed' or status == 'skipped'
   or (sid and sid ~= '') then
  return {'done', {}}
end
local recipient = redis.call('HGET', KEYS[1], 'recipient') or ''
if redis.call('HEXISTS', KEYS[2], recipient) == 1 then
  transition(KEYS[1], ARGV[1], 'skipped', ARGV[2], ARGV[3], 'recipient opted out',
             {'reason', 'opted_out'})
  return {'opted_out', {}}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
transition(KEYS[1], ARGV[1], 'sending', ARGV[2], ARGV[3], '', {})
return {'send', redis.call('HGETALL', KEYS[1])}
"""
)

# A Twilio status report (callback or poll) moves a delivery forward only: a late or
# repeated report never overwrites a later state. KEYS: record.  ARGV: id, now, status index
# prefix, Twilio status, its rank, our status for it ('' = unchanged), error code, detail.
_TWILIO_STATUS = (
    _LUA_TRANSITION
    + """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 'missing' end
local rank = tonumber(redis.call('HGET', KEYS[1], 'twilio_status_rank') or '0') or 0
if tonumber(ARGV[5]) <= rank then return 'stale' end
local status = ARGV[6] ~= '' and ARGV[6] or current
local extra = {'twilio_status', ARGV[4], 'twilio_status_rank', ARGV[5]}
if ARGV[7] ~= '' then
  table.insert(extra, 'error_code'); table.insert(extra, ARGV[7])
end
transition(KEYS[1], ARGV[1], status, ARGV[2], ARGV[3], ARGV[8], extra)
return 'applied'
"""
)

# Cancel a delivery held in our own delayed queue, atomically against its promotion.
# KEYS: record, delayed sends.  ARGV: id, now, status index prefix.
_CANCEL_SCHEDULED = (
    _LUA_TRANSITION
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 'missing'} end
if status ~= 'scheduled' then return {0, status} end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return {0, 'queued'} end
transition(KEYS[1], ARGV[1], 'canceled', ARGV[2], ARGV[3], 'canceled before sending', {})
return {1, 'canceled'}
"""
)

# A message someone else sent on the account, imported once (keyed by its SID).
# KEYS: SID index, record, index, destination index, recipient index ('' = none).
# ARGV: id, retention s, status index prefix, status, then the record's field/value pairs.
_IMPORT_EXTERNAL = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'status', ARGV[4], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
if KEYS[5] ~= '' then redis.call('ZADD', KEYS[5], 0, ARGV[1]) end
redis.call('ZADD', ARGV[3] .. ARGV[4], 0, ARGV[1])
return 1
"""


CheckVerdict = Literal["pass", "duplicate", "opted_out", "throttled"]


@dataclass(frozen=True, slots=True)
class Check:
    """A verdict of admission's checks (`_CHECKS`) and the facts behind it."""

    verdict: CheckVerdict
    original_id: str | None = None  # duplicate: the delivery that handled the event
    suppression: Suppression | None = None  # opted_out: when and how
    held_by: str | None = None  # throttled: the delivery holding the window…
    frees_at_ms: int | None = None  # …and when the window frees (epoch ms)

    @classmethod
    def from_reply(cls, reply: Sequence[Any], recipient: str | None, now_ms: int) -> Check:
        """Read `check`'s reply ({verdict, …facts}) as the script gave it."""
        verdict = cast(CheckVerdict, reply[0])
        if verdict == "duplicate":
            return cls(verdict, original_id=reply[1] or None)
        if verdict == "opted_out":
            return cls(verdict, suppression=parse_suppression(recipient or "", reply[1]))
        if verdict == "throttled":
            return cls(verdict, held_by=reply[1] or None, frees_at_ms=now_ms + max(reply[2], 0))
        return cls(verdict)

    def detail(self, window_ms: int) -> str | None:
        """The verdict in words, for whoever sent the event (None for "pass")."""
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
        if self.verdict == "throttled" and self.frees_at_ms is not None:
            since = iso_ms(self.frees_at_ms - window_ms)
            return (
                f"one message per {_duration(window_ms)} per recipient: the window is held "
                f"since {since} by delivery {self.held_by} and frees at "
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


def _duration(ms: int) -> str:
    """A window in the unit it was most likely written in: `1h`, `90s`, `7d`."""
    seconds = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Admission:
    """What ingest answers for one (event, destination): the decision and the delivery id."""

    destination_id: str
    decision: Decision
    delivery_id: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """One page of the log, newest first, and the cursor for the next (None: the last)."""

    items: list[DeliveryRecord]
    next_cursor: str | None


@storage_errors
class DeliveryLog:
    """Reads and writes delivery records; the only code that knows their Redis layout."""

    def __init__(self, redis: Redis, dedupe_ttl_s: int, retention_s: int) -> None:
        self._redis = redis
        self._dedupe_ttl_ms = dedupe_ttl_s * 1000
        self._retention_s = retention_s
        self._batcher = CommandBatcher(redis)
        self._admit = redis.register_script(_ADMIT)
        self._preview = redis.register_script(_PREVIEW)
        self._finish_send = redis.register_script(_FINISH_SEND)
        self._begin_send = redis.register_script(_BEGIN_SEND)
        self._twilio_status = redis.register_script(_TWILIO_STATUS)
        self._cancel_scheduled = redis.register_script(_CANCEL_SCHEDULED)
        self._import_external = redis.register_script(_IMPORT_EXTERNAL)

    async def admit(self, deliveries: Sequence[NewDelivery]) -> list[Admission]:
        """Dedupe, claim throttle windows, record and enqueue — one round trip for all
        (shared with whatever else this process is sending to Redis at the time)."""
        if not deliveries:
            return []
        now = now_iso()
        ids = [new_delivery_id() for _ in deliveries]
        items = [
            _admission_input(i, d, now, self._dedupe_ttl_ms, self._retention_s)
            for i, d in zip(ids, deliveries, strict=True)
        ]
        # One script call per chunk: a reply per delivery costs redis-py more than the
        # call, and a bounded chunk keeps each call short for Redis' other clients.
        chunks = [
            orjson.dumps(items[i : i + _ADMIT_CHUNK]) for i in range(0, len(items), _ADMIT_CHUNK)
        ]
        replies = await self._evalsha(self._admit, chunks)
        now_ms = time.time_ns() // 1_000_000
        results = []
        outcomes = (outcome for chunk in replies for outcome in chunk)
        for delivery_id, new, reply in zip(ids, deliveries, outcomes, strict=True):
            status = reply[0]
            if status == "queued":
                results.append(Admission(new.destination_id, "queued", delivery_id, new.detail))
            elif status == "scheduled":
                held = f"held until {iso_ms(new.due_ms)}" if new.due_ms is not None else None
                results.append(Admission(new.destination_id, "scheduled", delivery_id, held))
            elif status == "duplicate":
                check = Check.from_reply(reply, new.recipient, now_ms)
                detail = check.detail(new.throttle_window_ms)
                results.append(Admission(new.destination_id, "duplicate", reply[1], detail))
            elif reply[1] in ("opted_out", "throttled"):
                check = Check.from_reply(reply[1:], new.recipient, now_ms)
                detail = check.detail(new.throttle_window_ms)
                results.append(Admission(new.destination_id, reply[1], delivery_id, detail))
            else:
                decision = cast(Decision, reply[1])
                results.append(Admission(new.destination_id, decision, delivery_id, new.detail))
        return results

    async def preview(self, new: NewDelivery) -> AdmissionPreview:
        """Admission's checks for `new`, read-only: the same script code, nothing claimed."""
        sendable = not new.skip_reason
        reply = await self._preview(
            keys=[
                keys.dedupe(new.destination_id, new.event_identity),
                keys.SUPPRESSIONS,
                (new.throttle_key or "") if sendable else "",
            ],
            args=[(new.recipient or "") if sendable else ""],
        )
        now_ms = time.time_ns() // 1_000_000
        with_dedupe = Check.from_reply(reply[0], new.recipient, now_ms)
        return AdmissionPreview(
            check=Check.from_reply(reply[1], new.recipient, now_ms),
            duplicate_of=with_dedupe.original_id if with_dedupe.verdict == "duplicate" else None,
        )

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """One record, or None when unknown or past retention."""
        fields: dict[str, str] = await self._redis.hgetall(keys.delivery(delivery_id))  # type: ignore[assignment]
        return DeliveryRecord.from_fields(delivery_id, fields) if fields else None

    async def begin_send(self, delivery_id: str) -> tuple[BeginVerdict, DeliveryRecord | None]:
        """Claim a queued delivery for sending: ``("send", record)``, or a verdict
        ``"missing"`` (expired), ``"done"`` (already sent or final) or ``"opted_out"``."""
        verdict, flat = await self._run_script(
            self._begin_send,
            (keys.delivery(delivery_id), keys.SUPPRESSIONS),
            (delivery_id, now_iso(), keys.STATUS_INDEX_PREFIX),
        )
        if verdict != "send":
            return cast(BeginVerdict, verdict), None
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return "send", DeliveryRecord.from_fields(delivery_id, fields)

    async def finish_send(
        self,
        record: DeliveryRecord,
        entry_id: str,
        status: DeliveryStatus,
        *,
        detail: str | None = None,
        outcome: SendOutcome | None = None,
        retry_at_ms: int | None = None,
        release_throttle: bool = False,
        suppression: bytes | None = None,
    ) -> None:
        """Record a send's outcome and acknowledge its queue entry, in one atomic step.

        `outcome` is what the attempt adds to the record (its SID is indexed for status
        callbacks); `retry_at_ms` parks the delivery in the delayed queue; `release_throttle`
        frees the window it claimed (only if it still holds it); `suppression` (a suppression
        list value) suppresses its recipient.
        """
        throttle_key = record.throttle_key if release_throttle else None
        recipient = record.recipient or ""
        twilio_sid = outcome.twilio_sid if outcome else None
        await self._run_script(
            self._finish_send,
            (
                keys.delivery(record.id),
                keys.SEND_STREAM,
                keys.twilio_sid(twilio_sid) if twilio_sid else "",
                keys.DELAYED_SENDS if retry_at_ms is not None else "",
                throttle_key or "",
                keys.SUPPRESSIONS if suppression and recipient else "",
            ),
            (
                record.id,
                status,
                now_iso(),
                keys.STATUS_INDEX_PREFIX,
                detail or "",
                keys.SEND_GROUP,
                entry_id,
                self._retention_s,
                retry_at_ms if retry_at_ms is not None else "",
                recipient,
                suppression or "",
                *(outcome.fields() if outcome else ()),
            ),
        )

    async def _run_script(
        self, script: AsyncScript, script_keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run a `_JSON_INPUT` script once: its keys and arguments as one JSON argument."""
        strings = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        [reply] = await self._evalsha(script, [orjson.dumps((script_keys, strings))])
        return reply

    async def _evalsha(self, script: AsyncScript, payloads: Sequence[bytes]) -> list[Any]:
        """One call of `script` per JSON payload, all through the batcher (one round trip
        shared with concurrent callers), loading the script first if Redis lost it (a
        restart or a flush). Plain EVALSHA: redis-py's Script inside a pipeline adds a
        SCRIPT EXISTS round trip."""
        commands = [("EVALSHA", script.sha, 0, payload) for payload in payloads]
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
                now_iso(),
                keys.STATUS_INDEX_PREFIX,
                twilio_status,
                twilio_status_rank(twilio_status),
                status or "",
                error_code if error_code is not None else "",
                detail,
            ],
        )
        return cast(StatusVerdict, result)

    async def cancel_scheduled(self, delivery_id: str) -> tuple[bool, str]:
        """Cancel a delivery we hold until its time: (True, "canceled"), else (False, status)."""
        done, status = await self._cancel_scheduled(
            keys=[keys.delivery(delivery_id), keys.DELAYED_SENDS],
            args=[delivery_id, now_iso(), keys.STATUS_INDEX_PREFIX],
        )
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
                *message.fields(delivery_id, destination, now_iso()),
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
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeliveryPage:
        """Newest first. Reads the most selective index, filters the rest while paging."""
        if recipient:
            index = keys.RECIPIENT_INDEX_PREFIX + recipient
        elif destination:
            index = keys.DESTINATION_INDEX_PREFIX + destination
        elif status:
            index = keys.STATUS_INDEX_PREFIX + status
        else:
            index = keys.DELIVERY_INDEX
        wanted: list[tuple[str | None, Callable[[DeliveryRecord], str | None]]] = [
            (destination, lambda r: r.destination),
            (status, lambda r: r.status),
            (recipient, lambda r: r.recipient),
        ]
        items: list[DeliveryRecord] = []
        upper = f"({cursor}" if cursor else "+"
        # Bounded scan: a sparse filter returns a short page with a cursor, never a stall.
        for _ in range(20):
            ids: list[str] = await self._redis.zrevrangebylex(  # type: ignore[assignment]
                index, upper, "-", start=0, num=limit
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


def _admission_input(
    delivery_id: str, new: NewDelivery, now: str, dedupe_ttl_ms: int, retention_s: int
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """One delivery's [keys, args, record] for the admission script."""
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
        str(retention_s),
        now,
        "skipped" if new.skip_reason else "queued",
        new.skip_reason or "",
        keys.STATUS_INDEX_PREFIX,
        new.recipient or "",
        str(new.due_ms) if new.due_ms is not None else "",
    )
    return script_keys, args, new.fields(delivery_id, now)
