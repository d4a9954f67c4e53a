"""The delivery record: its one typed class and its one serializer, the delivery statuses,
the decisions admission answers, and what each provider status means for a delivery.

Nothing outside the store reads or writes a record's Redis fields by name: services build
a `NewDelivery` or a `SendOutcome` and read a `DeliveryRecord`.
"""

from __future__ import annotations

import base64
import functools
import random
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import orjson

from app.guard import Caps, VelocityLimit
from app.store import keys

Mode = Literal["live", "test"]

DeliveryStatus = Literal[
    "queued",
    "sending",  # an attempt is out: recorded before the request leaves (the intent ledger)
    "unknown",  # an attempt's outcome is not known: the provider is asked before anything else
    "retrying",
    "sent",
    "mocked",
    "failed",
    "skipped",
    "scheduled",  # held until its send time (by us, or by the provider when it has an id)
    # reported by the provider after sending
    "delivered",
    "undelivered",
    "read",
    "canceled",
    "external",  # sent by another system on the account, found by reconciliation
    "expired",  # still unsent when its validity ran out: never sent late
    "held",  # admitted, its destination paused since: waits for the resume (pauses.py)
]

# The statuses most deliveries end in, and so most of a log: a listing filtered by one of
# them reads the whole log (filtering as it pages, where matches are dense) rather than an
# index costing ~150 bytes of Redis per delivery. The other statuses each have an index:
# the open ones (reconciliation sweeps them) and the rarer ones people look for.
UNINDEXED_STATUSES: frozenset[DeliveryStatus] = frozenset(
    {"mocked", "delivered", "read", "skipped"}
)

# Why a delivery was recorded as skipped (never sent). Admission decides the first two and
# the last four, the pipeline the others.
SkipReason = Literal[
    "throttled",
    "opted_out",
    "invalid_recipient",
    "render_error",
    "body_too_long",
    "blocked_country",
    "quiet_hours",
    "blocked_velocity",  # the pumping guard: too many first-time recipients, or Twilio's
    "capped",  # a frequency cap of the recipient's
    "destination_paused",  # the destination is paused (pauses.py)
    "over_budget",  # its daily budget is spent: the destination pauses until the day ends
]

# What ingest (and POST /v1/messages) answers for one delivery.
Decision = Literal[
    "queued",
    "scheduled",
    "duplicate",
    "throttled",
    "opted_out",
    "invalid_recipient",
    "render_error",
    "body_too_long",
    "blocked_country",
    "quiet_hours",
    "deferred",  # scheduled by quiet hours
    "blocked_velocity",
    "capped",
    "destination_paused",
    "over_budget",
]

# Stored field names from when Twilio was the only provider: users' Redis holds them, so
# they stay (the Lua scripts write the same names). The API shows them under these names
# too (`twilio_sid`, `twilio_status`, `twilio_request`): a contract.
PROVIDER_ID_FIELD = "twilio_sid"
PROVIDER_STATUS_FIELD = "twilio_status"
PROVIDER_RANK_FIELD = "twilio_status_rank"
LEGACY_REQUEST_FIELD = "twilio_request"

# The provider statuses (`app/sms/reports.py`'s lifecycle), each with its rank (a report
# ranked at or below the one recorded is stale: statuses only move forward) and the
# delivery status it moves a delivery to (None: only the provider status changes; a
# delivery the provider has "queued" is, for us, still "sent"). Test mode's "mocked" and
# statuses a provider could not map rank 0.
PROVIDER_STATUSES: dict[str, tuple[int, DeliveryStatus | None]] = {
    "accepted": (1, None),
    "scheduled": (1, None),
    "queued": (1, None),
    "sending": (2, None),
    "sent": (3, "sent"),
    "delivered": (4, "delivered"),
    "undelivered": (4, "undelivered"),
    "failed": (4, "failed"),
    "canceled": (4, "canceled"),
    "read": (5, "read"),
}


def provider_status_rank(status: str) -> int:
    """How far along a message's lifecycle the provider status `status` is (0: unknown)."""
    return PROVIDER_STATUSES.get(status, (0, None))[0]


def delivery_status_for(status: str) -> DeliveryStatus | None:
    """The delivery status a provider status moves a delivery to; None leaves it as is."""
    return PROVIDER_STATUSES.get(status, (0, None))[1]


@functools.lru_cache(maxsize=2)
def _iso_second(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


def iso_ms(epoch_ms: int) -> str:
    """An epoch time in ms as UTC ISO 8601 to the millisecond: ``2026-11-23T16:56:58.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


def epoch_ms(moment: datetime | None) -> int | None:
    """A time as epoch milliseconds (a time without a zone is UTC); None stays None."""
    if moment is None:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def now_ms() -> int:
    """Now, epoch milliseconds."""
    return time.time_ns() // 1_000_000


def now_iso() -> str:
    """Now, UTC, to the millisecond (formatted ~4x faster than datetime's isoformat: the
    hot path stamps every record)."""
    return iso_ms(time.time_ns() // 1_000_000)


def new_delivery_id(created_ms: int | None = None) -> str:
    """Time-ordered id: sorting ids sorts deliveries by creation (the log's cursor).

    The tail is 64 random bits from `random` (reseeded per process and after fork), not
    os.urandom: a syscall per id showed in profiles, and the id is not a secret.
    """
    ms = created_ms if created_ms is not None else time.time_ns() // 1_000_000
    # 63 bits: a record's tail starts with 0-7; 8 marks a skipped delivery's (skipped_id).
    return f"dl_{ms:012x}{random.getrandbits(63):016x}"


def mocked_sid(delivery_id: str) -> str:
    """The SID a test-mode send stands for: derived from the delivery id (not stored)."""
    return f"SM{delivery_id[3:]:0<32}"


def skipped_id(entry_id: str) -> str:
    """The id of the skipped delivery at `entry_id` (``<ms>-<seq>``) of the skipped log:
    its time, then 8 and the entry's sequence number, in the same 28 hex digits as every
    id (time-ordered like them)."""
    ms, _, seq = entry_id.partition("-")
    return f"dl_{int(ms):012x}8{int(seq or 0):015x}"


def skipped_entry_id(delivery_id: str) -> str | None:
    """The skipped log entry a delivery id names, or None when it names a record (ids
    from before the skipped log may start their tail with 8 too: their record is read
    first)."""
    if len(delivery_id) != 31 or not delivery_id.startswith("dl_") or delivery_id[15] != "8":
        return None
    try:
        return f"{int(delivery_id[3:15], 16)}-{int(delivery_id[16:], 16)}"
    except ValueError:
        return None


def delivery_id_of_mark(mark: str) -> str:
    """The delivery a dedupe mark names: a record's id, or (a skipped delivery's mark) its
    skipped log entry."""
    return skipped_id(mark) if mark and not mark.startswith("dl_") else mark


def dedupe_buckets(
    destination_id: str, event_identity: str, now_ms: int, dedupe_ttl_ms: int
) -> tuple[list[str], int]:
    """The buckets that may hold a final delivery's dedupe mark (field: the event
    identity), the one a mark written now goes to first, and when that one expires (ms).

    A generation is half the dedupe TTL; a bucket expires whole two generations after its
    own ends, so a mark is remembered for the TTL at least and 1.5 times it at most, and
    three buckets are read per check.
    """
    generation_ms = max(dedupe_ttl_ms // 2, 1)
    generation = now_ms // generation_ms
    shard = zlib.crc32(event_identity.encode()) % keys.DEDUPE_SHARDS
    buckets = [keys.dedupe_bucket(destination_id, generation - back, shard) for back in (0, 1, 2)]
    return buckets, (generation + 3) * generation_ms


def id_bound(epoch_ms: int) -> str:
    """The smallest possible id created at `epoch_ms`: a bound for range queries."""
    return f"dl_{max(epoch_ms, 0):012x}"


def id_created_ms(delivery_id: str) -> int | None:
    """When a delivery was created (epoch ms), read from its id; None if not one of ours."""
    try:
        return int(delivery_id[3:15], 16) if delivery_id.startswith("dl_") else None
    except ValueError:
        return None


# A body refused as too long is kept cut to its first bytes (UTF-8): a 900 KB property is
# not stored whole for a month, and the record stays compact.
BODY_KEPT_WHEN_TOO_LONG = 60


def history_entry(offset_ms: int, status: str, reason: str = "", detail: str = "") -> str:
    """One status history entry as stored: ``<ms after the id's time>|<status>|<reason>|
    <detail>``, empty tail parts left out; entries are joined by newlines (transition.lua
    writes the same). Short, so that a record stays in Redis' listpack encoding."""
    parts = [str(offset_ms), status, reason, single_line(detail)]
    while not parts[-1]:
        parts.pop()
    return "|".join(parts)


def single_line(text: str) -> str:
    """`text` fit for one history entry (newlines separate entries)."""
    return text.replace("\r", " ").replace("\n", " ")


def parse_history(delivery_id: str, stored: str) -> list[dict[str, str]]:
    """The stored history as the API shows it: [{status, at, reason?, detail?}, …].

    Records written before the lean format hold a JSON list, to which later entries
    were appended on their own lines: both are read.
    """
    base = id_created_ms(delivery_id) or 0
    entries: list[dict[str, str]] = []
    for line in stored.split("\n"):
        if not line:
            continue
        if line.startswith("["):
            entries.extend(orjson.loads(line))
            continue
        offset, status, reason, detail = [*line.split("|", 3), "", "", ""][:4]
        entry = {"status": status, "at": iso_ms(base + int(offset))}
        if reason:
            entry["reason"] = reason
        if detail:
            entry["detail"] = detail
        entries.append(entry)
    return entries


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """What one delivery counts in its destination's budget for the day, and the limits
    (None: not limited that way); money in millionths."""

    key: str
    segments: int
    segments_limit: int | None
    cost: int
    cost_limit: int | None
    day_end_ms: int

    def args(self) -> tuple[str, str, str, str, str]:
        """The admission script's budget arguments (destination_gate.lua)."""
        return (
            str(self.segments),
            "" if self.segments_limit is None else str(self.segments_limit),
            str(self.cost),
            "" if self.cost_limit is None else str(self.cost_limit),
            str(self.day_end_ms),
        )


NO_BUDGET_ARGS = ("0", "", "0", "", "0")


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """Everything known about a delivery when it is admitted."""

    destination_id: str
    mode: Mode
    event_identity: str
    event_uuid: str | None
    event_name: str
    recipient: str | None
    body: str | None
    encoding: str | None
    segments: int | None
    from_number: str | None = None  # exactly one of from_number and messaging_service_sid
    messaging_service_sid: str | None = None
    skip_reason: SkipReason | None = None  # set: recorded as skipped, never sent
    detail: str | None = None
    # One message per recipient per window, for this destination or across every
    # destination with scope "global" (a skipped delivery claims no window).
    throttle_scope: Literal["destination", "global"] | None = None
    throttle_window_ms: int = 0
    # Held in our own delayed queue until this time (epoch ms) instead of sent at once.
    due_ms: int | None = None
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    send_at: str | None = None  # ISO 8601: the provider holds the message until then
    deferred: bool = False  # held (`due_ms`) by quiet hours: admission answers "deferred"
    expires_ms: int | None = None  # epoch ms: the worker never sends it after this
    channel: Literal["sms", "whatsapp"] = "sms"
    content_sid: str | None = None  # a Content template instead of a body
    content_variables: str | None = None  # JSON
    quiet: str | None = None  # its quiet hours, checked again before each attempt
    # The guard (app/guard.py): the recipient's country, the destination's velocity
    # limits (live sends only) and the caps its texts count against.
    country: str | None = None
    velocity: tuple[VelocityLimit, ...] = ()
    caps: Caps | None = None

    @property
    def capped(self) -> bool:
        """Whether this delivery counts against (and is checked by) frequency caps."""
        return bool(self.caps and self.caps.rules and self.recipient and not self.skip_reason)

    budget: BudgetCharge | None = None  # counted in its destination's budget (pauses.py)

    @property
    def throttle_key(self) -> str | None:
        """The key of the window this delivery claims, None when it claims none."""
        if not self.claims_window or self.throttle_scope is None or self.recipient is None:
            return None
        return keys.throttle(self.mode, self.throttle_scope, self.destination_id, self.recipient)

    def fields(self) -> list[str]:
        """The new record's fields as a flat [name, value, …] list of strings (Lua would
        print numbers as floats); status, reason and history are the script's to set.

        Lean (issue 11): what the key, the id or another field says is not stored (id,
        times, throttle key), nor an empty value; every value stays short enough for Redis'
        compact listpack encoding (64 bytes) in the common case.
        """
        body = self.body or ""
        if self.skip_reason == "body_too_long":
            # Never sent: only its beginning, cut on a character boundary.
            kept = body.encode()[:BODY_KEPT_WHEN_TOO_LONG].decode(errors="ignore")
            body = kept + "…"
        # Built by hand, not from a dict: admission runs it for every delivery. Short
        # names (`FIELD_NAMES`): a name is stored in every record.
        flat = ["dest", self.destination_id, "mode", self.mode]
        flat += ["event", self.event_name]
        if self.event_uuid:
            packed = pack_uuid(self.event_uuid)
            flat += ["u", packed] if packed else ["uuid", self.event_uuid]
        if self.recipient:
            flat += ["recipient", self.recipient]
        if body:
            flat += ["body", body]
        if self.encoding and (self.encoding != DEFAULT_ENCODING or not body):
            flat += ["enc", self.encoding]  # GSM-7, what most bodies are, is not stored
        if self.segments is not None:
            flat += ["segs", str(self.segments)]
        if self.detail:
            flat += ["detail", self.detail]
        if self.event_identity != self.event_uuid:
            flat += ["dedupe", self.event_identity]  # else the uuid names its dedupe mark
        if self.messaging_service_sid:
            flat += ["messaging_service_sid", self.messaging_service_sid]
        elif self.from_number:
            flat += ["from", self.from_number]
        if self.media_urls:
            flat += ["media_urls", orjson.dumps(self.media_urls).decode()]
        if self.status_callback:
            flat += ["status_callback", self.status_callback]
        if self.validity_period:
            flat += ["validity_period", str(self.validity_period)]
        if self.send_at:
            flat += ["send_at", self.send_at]
        if self.expires_ms is not None:
            flat += ["expires", str(self.expires_ms)]
        if self.channel != "sms":
            flat += ["channel", self.channel]
        if self.content_sid:
            flat += ["content_sid", self.content_sid]
        if self.content_variables:
            flat += ["content_variables", self.content_variables]
        if self.quiet and not self.skip_reason:
            flat += ["quiet", self.quiet]
        if self.caps and self.capped:
            flat += ["cap", self.caps.category]  # names its cap key, released on failure
        if self.claims_window:  # last: a delivery admission skips leaves them out
            flat += ["throttle", self.throttle_scope or ""]  # the window it claims…
            flat += ["win", str(self.throttle_window_ms)]  # …re-anchored at the text
        return flat

    @property
    def claims_window(self) -> bool:
        """Whether it claims a throttle window if admitted (its last two fields say which)."""
        return bool(self.throttle_scope and self.recipient and not self.skip_reason)


@dataclass(frozen=True, slots=True)
class ExternalMessage:
    """A message someone else sent on the account, as reconciliation imports it."""

    provider_id: str
    recipient: str
    body: str
    encoding: str
    segments: int
    from_number: str
    messaging_service_sid: str
    provider_status: str
    error_code: int | None
    error_message: str
    sent_ms: int
    imported_from: str  # the provider's name, for the record's history

    def fields(self, delivery_id: str, destination: str, now_ms: int) -> list[str]:
        """The record's fields as a flat [name, value, …] list of strings."""
        offset = now_ms - (id_created_ms(delivery_id) or now_ms)
        values = {
            "dest": destination,
            "event": destination,
            "mode": "live",
            "recipient": self.recipient,
            "body": self.body,
            "enc": self.encoding,
            "segs": str(self.segments),
            "from": self.from_number,
            "messaging_service_sid": self.messaging_service_sid,
            PROVIDER_ID_FIELD: self.provider_id,
            PROVIDER_STATUS_FIELD: self.provider_status,
            PROVIDER_RANK_FIELD: str(provider_status_rank(self.provider_status) or ""),
            "error_code": str(self.error_code) if self.error_code is not None else "",
            "error_message": self.error_message,
            "history": history_entry(
                offset, "external", detail=f"imported from {self.imported_from}"
            ),
        }
        return [item for name, value in values.items() if value for item in (name, value)]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What a send attempt adds to a record (each None: left as it is)."""

    provider_id: str | None = None
    provider_status: str | None = None
    # Set together: an error's message replaces a previous attempt's code and message.
    error_code: int | None = None
    error_message: str | None = None
    # An unknown outcome: when the provider's list can be trusted to show the attempt (ms).
    resolve_after_ms: int | None = None

    def fields(self) -> list[str]:
        """The fields to set, as a flat [name, value, …] list of strings."""
        flat: list[str] = []
        if self.resolve_after_ms is not None:
            flat += ["resolve_after", str(self.resolve_after_ms)]
        if self.provider_id is not None:
            flat += [PROVIDER_ID_FIELD, self.provider_id]
        if self.provider_status is not None:
            flat += [PROVIDER_STATUS_FIELD, self.provider_status]
            rank = provider_status_rank(self.provider_status)
            flat += [PROVIDER_RANK_FIELD, str(rank)] if rank else []
        if self.error_message is not None:
            code = str(self.error_code) if self.error_code is not None else ""
            flat += ["error_code", code, "error_message", self.error_message]
        return flat


# The record's field names before they were shortened (each is stored in every record).
FIELD_NAMES = {
    "destination": "dest",
    "event_name": "event",
    "event_uuid": "uuid",
    "encoding": "enc",
    "segments": "segs",
    "window": "win",
}


# A body's encoding when its record names none (new records store only the others).
DEFAULT_ENCODING = "GSM-7"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pack_uuid(value: str) -> str | None:
    """A canonical (lowercase, hyphenated) UUID in 22 characters (base64url of its 16
    bytes) instead of 36, or None when `value` is not one (stored as it is)."""
    if len(value) != 36 or not _CANONICAL_UUID.fullmatch(value):
        return None
    return base64.urlsafe_b64encode(bytes.fromhex(value.replace("-", ""))).decode()[:22]


def unpack_uuid(packed: str) -> str:
    """The UUID `pack_uuid` packed."""
    hexed = base64.urlsafe_b64decode(packed + "==").hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _attempts(f: dict[str, str]) -> int:
    """Attempts made: stored while a delivery is pending; once it is sent, the history's
    `sending` steps say it."""
    if f.get("attempts"):
        return int(f["attempts"])
    history = f.get("history") or ""
    steps = history.count("|sending") if "|sending" in history else history.count('"sending"')
    return steps - int(f.get("unmade") or 0)  # attempts held back (hold_send.lua) never left


def _int(value: str | None) -> int | None:
    return int(value) if value else None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as stored in the log (absent or empty stored strings read as None).

    Derived, not stored: the id (the key), the times (the history's, offsets from the
    id's time), the throttle key (mode, scope, destination, recipient).
    """

    id: str
    destination: str
    mode: Mode
    status: DeliveryStatus
    reason: str | None
    detail: str | None
    event_uuid: str | None
    event_name: str
    recipient: str | None
    from_number: str | None
    messaging_service_sid: str | None
    body: str | None
    encoding: str | None
    segments: int | None
    attempts: int
    throttle_scope: str | None
    provider_id: str | None  # the message's id at the provider (Twilio's SID)
    provider_status: str | None
    error_code: int | None
    error_message: str | None
    history: str = field(repr=False)  # see history_entry; parse_history reads it
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    send_at: str | None = None
    # The intent ledger: when the last attempt's request started, and (outcome unknown)
    # from when the provider's list can be trusted to show it (epoch ms).
    attempt_at_ms: int | None = None
    resolve_after_ms: int | None = None
    throttle_window_ms: int | None = None
    event_identity: str | None = None  # what the dedupe mark is named by
    expires_ms: int | None = None
    channel: Literal["sms", "whatsapp"] = "sms"
    content_sid: str | None = None
    content_variables: str | None = None
    quiet: str | None = None  # quiet hours checked again before each attempt
    # Sender pacing: "<attempt>:<epoch ms>", the slot reserved for that attempt while the
    # delivery waited outside the stream for it.
    paced: str | None = None
    cap_category: str | None = None  # the frequency caps it counts against
    # Records written before the lean format: the stored request and times.
    legacy_request: str | None = field(default=None, repr=False)
    legacy_times: tuple[str | None, str | None] = (None, None)

    @classmethod
    def from_fields(cls, delivery_id: str, f: dict[str, str]) -> DeliveryRecord:
        """Read a record from its Redis hash (or a skipped log entry's fields); records
        from before the short field names are read under their names of then."""
        if "dest" not in f:
            f = {FIELD_NAMES.get(name, name): value for name, value in f.items()}
        media = f.get("media_urls")
        status = f.get("status", "")
        # A mocked send's SID and Twilio status are derived, not stored.
        mocked = status == "mocked" and not f.get("twilio_sid")
        event_uuid = unpack_uuid(f["u"]) if f.get("u") else f.get("uuid") or None
        legacy_key = f.get("throttle_key") or ""
        legacy_scope = "global" if ":global:" in legacy_key else "destination"
        return cls(
            id=delivery_id,
            destination=f.get("dest", ""),
            mode=cast(Mode, f.get("mode") or "live"),
            status=cast(DeliveryStatus, status),
            reason=f.get("reason") or None,
            detail=f.get("detail") or None,
            event_uuid=event_uuid,
            event_name=f.get("event", ""),
            recipient=f.get("recipient") or None,
            from_number=f.get("from") or None,
            messaging_service_sid=f.get("messaging_service_sid") or None,
            body=f.get("body") or None,
            encoding=f.get("enc") or (DEFAULT_ENCODING if f.get("body") else None),
            segments=_int(f.get("segs")),
            attempts=_attempts(f),
            throttle_scope=f.get("throttle") or (legacy_scope if legacy_key else None),
            provider_id=mocked_sid(delivery_id) if mocked else f.get(PROVIDER_ID_FIELD) or None,
            provider_status="mocked" if mocked else f.get(PROVIDER_STATUS_FIELD) or None,
            error_code=_int(f.get("error_code")),
            error_message=f.get("error_message") or None,
            history=f.get("history") or "",
            media_urls=tuple(orjson.loads(media)) if media else (),
            status_callback=f.get("status_callback") or None,
            validity_period=_int(f.get("validity_period")),
            send_at=f.get("send_at") or None,
            attempt_at_ms=_int(f.get("attempt_at")),
            resolve_after_ms=_int(f.get("resolve_after")),
            throttle_window_ms=_int(f.get("win")),
            event_identity=f.get("dedupe") or event_uuid or None,
            expires_ms=_int(f.get("expires")),
            channel="whatsapp" if f.get("channel") == "whatsapp" else "sms",
            content_sid=f.get("content_sid") or None,
            content_variables=f.get("content_variables") or None,
            quiet=f.get("quiet") or None,
            paced=f.get("paced") or None,
            cap_category=f.get("cap") or None,
            legacy_request=f.get(LEGACY_REQUEST_FIELD) or None,
            legacy_times=(f.get("created_at"), f.get("updated_at")),
        )

    @classmethod
    def from_skipped(cls, delivery_id: str, f: dict[str, str]) -> DeliveryRecord:
        """Read a skipped delivery from its skipped log entry: the record's fields and its
        reason; its one history step is derived (skipped when created)."""
        history = history_entry(0, "skipped", f.get("reason", ""))
        return cls.from_fields(delivery_id, {**f, "status": "skipped", "history": history})

    @property
    def throttle_key(self) -> str | None:
        """The window this delivery claimed, if any."""
        if self.throttle_scope is None or not self.recipient:
            return None
        return keys.throttle(self.mode, self.throttle_scope, self.destination, self.recipient)

    @property
    def cap_key(self) -> str | None:
        """The frequency-cap set this delivery counts in, if any."""
        if self.cap_category is None or not self.recipient:
            return None
        return keys.cap(self.mode, self.cap_category, self.recipient)

    @property
    def created_at(self) -> str | None:
        """When the delivery was admitted (ISO, UTC): its history's first step."""
        created, _ = self.legacy_times
        history = parse_history(self.id, self.history)
        return created or (history[0]["at"] if history else None)

    @property
    def updated_at(self) -> str | None:
        """When its status last changed (ISO, UTC): its history's last step."""
        _, updated = self.legacy_times
        history = parse_history(self.id, self.history)
        return (history[-1]["at"] if history else None) or updated

    @property
    def dedupe_key(self) -> str | None:
        """The dedupe mark this delivery's event holds, if known."""
        if not self.event_identity:
            return None
        return keys.dedupe(self.destination, self.event_identity)

    def to_public(self, mocked_request: dict[str, object] | None = None) -> dict[str, Any]:
        """The JSON the admin API returns (whole recipient; the API is behind a token).

        `mocked_request`: the request a mocked send stood for, rebuilt by the caller from
        this record (test mode stores none); records from before kept theirs.
        """
        if self.legacy_request:
            mocked_request = orjson.loads(self.legacy_request)
        return {
            "id": self.id,
            "destination": self.destination,
            "mode": self.mode,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
            "event": {"uuid": self.event_uuid, "name": self.event_name},
            "recipient": self.recipient,
            "from": self.from_number,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "encoding": self.encoding,
            "segments": self.segments,
            "attempts": self.attempts,
            "twilio_sid": self.provider_id,
            "twilio_status": self.provider_status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "twilio_request": mocked_request,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": iso_ms(self.expires_ms) if self.expires_ms is not None else None,
            "channel": self.channel,
            "media_urls": list(self.media_urls),
            "content_sid": self.content_sid,
            "history": parse_history(self.id, self.history),
        }
