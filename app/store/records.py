"""The delivery record: its one typed class and its one serializer, the delivery statuses,
the decisions admission answers, and what each Twilio message status means for a delivery.

Nothing outside the store reads or writes a record's Redis fields by name: services build
a `NewDelivery` or a `SendOutcome` and read a `DeliveryRecord`.
"""

from __future__ import annotations

import functools
import random
import time
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
    "unknown",  # an attempt's outcome is not known: Twilio is asked before anything else
    "retrying",
    "sent",
    "mocked",
    "failed",
    "skipped",
    "scheduled",  # held until its send time (by us, or by Twilio when it has a SID)
    # reported by Twilio after sending
    "delivered",
    "undelivered",
    "read",
    "canceled",
    "external",  # sent by another system on the account, found by reconciliation
    "expired",  # still unsent when its validity ran out: never sent late
]

# The statuses most deliveries end in, and so most of a log: a listing filtered by one of
# them reads the whole log (filtering as it pages, where matches are dense) rather than an
# index costing ~150 bytes of Redis per delivery. The other statuses each have an index:
# the open ones (reconciliation sweeps them) and the rarer ones people look for.
UNINDEXED_STATUSES: frozenset[DeliveryStatus] = frozenset(
    {"mocked", "delivered", "read", "skipped"}
)

# Why a delivery was recorded as skipped (never sent). The pipeline decides all but the
# first two, admission those.
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
]

# Twilio's message statuses, each with its rank (a report ranked at or below the one
# recorded is stale: statuses only move forward) and the delivery status it moves a
# delivery to (None: only `twilio_status` changes; a delivery Twilio has "queued" is, for
# us, still "sent"). Test mode's "mocked" and unknown statuses rank 0.
TWILIO_STATUSES: dict[str, tuple[int, DeliveryStatus | None]] = {
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


def twilio_status_rank(twilio_status: str) -> int:
    """How far along Twilio's lifecycle `twilio_status` is (0: unknown)."""
    return TWILIO_STATUSES.get(twilio_status, (0, None))[0]


def delivery_status_for(twilio_status: str) -> DeliveryStatus | None:
    """The delivery status a Twilio status moves a delivery to; None leaves it as is."""
    return TWILIO_STATUSES.get(twilio_status, (0, None))[1]


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
    return f"dl_{ms:012x}{random.getrandbits(64):016x}"


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
    send_at: str | None = None  # ISO 8601: Twilio holds the message until then
    deferred: bool = False  # held (`due_ms`) by quiet hours: admission answers "deferred"
    expires_ms: int | None = None  # epoch ms: the worker never sends it after this
    channel: Literal["sms", "whatsapp"] = "sms"
    content_sid: str | None = None  # a Content template instead of a body
    content_variables: str | None = None  # JSON
    # The guard (app/guard.py): the recipient's country, the destination's velocity
    # limits (live sends only) and the caps its texts count against.
    country: str | None = None
    velocity: tuple[VelocityLimit, ...] = ()
    caps: Caps | None = None

    @property
    def capped(self) -> bool:
        """Whether this delivery counts against (and is checked by) frequency caps."""
        return bool(self.caps and self.caps.rules and self.recipient and not self.skip_reason)

    @property
    def throttle_key(self) -> str | None:
        """The key of the window this delivery claims, None when it claims none."""
        if self.throttle_scope is None or not self.recipient or self.skip_reason:
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
        # Built by hand, not from a dict: admission runs it for every delivery.
        flat = ["destination", self.destination_id, "mode", self.mode]
        flat += ["event_name", self.event_name]
        if self.event_uuid:
            flat += ["event_uuid", self.event_uuid]
        if self.recipient:
            flat += ["recipient", self.recipient]
        if body:
            flat += ["body", body]
        if self.encoding:
            flat += ["encoding", self.encoding]
        if self.segments is not None:
            flat += ["segments", str(self.segments)]
        if self.detail:
            flat += ["detail", self.detail]
        if self.throttle_scope and self.recipient and not self.skip_reason:
            flat += ["throttle", self.throttle_scope]  # the window it claims…
            flat += ["window", str(self.throttle_window_ms)]  # …re-anchored at the text
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
        if self.caps and self.capped:
            flat += ["cap", self.caps.category]  # names its cap key, released on failure
        return flat


@dataclass(frozen=True, slots=True)
class ExternalMessage:
    """A message someone else sent on the account, as reconciliation imports it."""

    sid: str
    recipient: str
    body: str
    encoding: str
    segments: int
    from_number: str
    messaging_service_sid: str
    twilio_status: str
    error_code: int | None
    error_message: str
    sent_ms: int

    def fields(self, delivery_id: str, destination: str, now_ms: int) -> list[str]:
        """The record's fields as a flat [name, value, …] list of strings."""
        offset = now_ms - (id_created_ms(delivery_id) or now_ms)
        values = {
            "destination": destination,
            "event_name": destination,
            "mode": "live",
            "recipient": self.recipient,
            "body": self.body,
            "encoding": self.encoding,
            "segments": str(self.segments),
            "from": self.from_number,
            "messaging_service_sid": self.messaging_service_sid,
            "twilio_sid": self.sid,
            "twilio_status": self.twilio_status,
            "twilio_status_rank": str(twilio_status_rank(self.twilio_status) or ""),
            "error_code": str(self.error_code) if self.error_code is not None else "",
            "error_message": self.error_message,
            "history": history_entry(offset, "external", detail="imported from Twilio"),
        }
        return [item for name, value in values.items() if value for item in (name, value)]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What a send attempt adds to a record (each None: left as it is)."""

    twilio_sid: str | None = None
    twilio_status: str | None = None
    # Set together: an error's message replaces a previous attempt's code and message.
    error_code: int | None = None
    error_message: str | None = None
    # An unknown outcome: when Twilio's list can be trusted to show the attempt (epoch ms).
    resolve_after_ms: int | None = None

    def fields(self) -> list[str]:
        """The fields to set, as a flat [name, value, …] list of strings."""
        flat: list[str] = []
        if self.resolve_after_ms is not None:
            flat += ["resolve_after", str(self.resolve_after_ms)]
        if self.twilio_sid is not None:
            flat += ["twilio_sid", self.twilio_sid]
        if self.twilio_status is not None:
            flat += ["twilio_status", self.twilio_status]
            rank = twilio_status_rank(self.twilio_status)
            flat += ["twilio_status_rank", str(rank)] if rank else []
        if self.error_message is not None:
            code = str(self.error_code) if self.error_code is not None else ""
            flat += ["error_code", code, "error_message", self.error_message]
        return flat


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
    twilio_sid: str | None
    twilio_status: str | None
    error_code: int | None
    error_message: str | None
    history: str = field(repr=False)  # see history_entry; parse_history reads it
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    send_at: str | None = None
    # The intent ledger: when the last attempt's request started, and (outcome unknown)
    # from when Twilio's list can be trusted to show it (epoch ms).
    attempt_at_ms: int | None = None
    resolve_after_ms: int | None = None
    throttle_window_ms: int | None = None
    event_identity: str | None = None  # what the dedupe mark is named by
    expires_ms: int | None = None
    channel: Literal["sms", "whatsapp"] = "sms"
    content_sid: str | None = None
    content_variables: str | None = None
    cap_category: str | None = None  # the frequency caps it counts against
    # Records written before the lean format: the stored request and times.
    legacy_twilio_request: str | None = field(default=None, repr=False)
    legacy_times: tuple[str | None, str | None] = (None, None)

    @classmethod
    def from_fields(cls, delivery_id: str, f: dict[str, str]) -> DeliveryRecord:
        """Read a record from its Redis hash."""
        media = f.get("media_urls")
        legacy_key = f.get("throttle_key") or ""
        legacy_scope = "global" if ":global:" in legacy_key else "destination"
        return cls(
            id=delivery_id,
            destination=f.get("destination", ""),
            mode=cast(Mode, f.get("mode") or "live"),
            status=cast(DeliveryStatus, f.get("status", "")),
            reason=f.get("reason") or None,
            detail=f.get("detail") or None,
            event_uuid=f.get("event_uuid") or None,
            event_name=f.get("event_name", ""),
            recipient=f.get("recipient") or None,
            from_number=f.get("from") or None,
            messaging_service_sid=f.get("messaging_service_sid") or None,
            body=f.get("body") or None,
            encoding=f.get("encoding") or None,
            segments=_int(f.get("segments")),
            attempts=int(f.get("attempts") or 0),
            throttle_scope=f.get("throttle") or (legacy_scope if legacy_key else None),
            twilio_sid=f.get("twilio_sid") or None,
            twilio_status=f.get("twilio_status") or None,
            error_code=_int(f.get("error_code")),
            error_message=f.get("error_message") or None,
            history=f.get("history") or "",
            media_urls=tuple(orjson.loads(media)) if media else (),
            status_callback=f.get("status_callback") or None,
            validity_period=_int(f.get("validity_period")),
            send_at=f.get("send_at") or None,
            attempt_at_ms=_int(f.get("attempt_at")),
            resolve_after_ms=_int(f.get("resolve_after")),
            throttle_window_ms=_int(f.get("window")),
            event_identity=f.get("dedupe") or f.get("event_uuid") or None,
            expires_ms=_int(f.get("expires")),
            channel="whatsapp" if f.get("channel") == "whatsapp" else "sms",
            content_sid=f.get("content_sid") or None,
            content_variables=f.get("content_variables") or None,
            cap_category=f.get("cap") or None,
            legacy_twilio_request=f.get("twilio_request") or None,
            legacy_times=(f.get("created_at"), f.get("updated_at")),
        )

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

    def to_public(self, twilio_request: dict[str, object] | None = None) -> dict[str, Any]:
        """The JSON the admin API returns (whole recipient; the API is behind a token).

        `twilio_request`: the request a mocked send stood for, rebuilt by the caller from
        this record (test mode stores none); records from before kept theirs.
        """
        if self.legacy_twilio_request:
            twilio_request = orjson.loads(self.legacy_twilio_request)
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
            "twilio_sid": self.twilio_sid,
            "twilio_status": self.twilio_status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "twilio_request": twilio_request,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": iso_ms(self.expires_ms) if self.expires_ms is not None else None,
            "channel": self.channel,
            "media_urls": list(self.media_urls),
            "content_sid": self.content_sid,
            "history": parse_history(self.id, self.history),
        }
