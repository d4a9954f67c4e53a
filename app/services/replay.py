"""Replay: send failed deliveries again, re-checked now.

A selection (destination, statuses, time range, error codes, or explicit ids — the
console's Resend is one id) is planned delivery by delivery. Each is skipped, with its
reason, when it was replayed already, its destination is gone or disabled, its event
already reached its recipient another way, or admission would refuse it now (opt-out,
throttle window: asked of the store's read-only admission preview, the admission
script's own checks). `dry_run` stops there; a real run admits each replay as a new
delivery (the send worker sends it) and marks the original as replayed.

Idempotent: the replay's dedupe identity is the original's id, so admission itself
refuses a second replay (as "duplicate"), and the marker records it for as long as
records are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast, get_args

from app.destinations import Destination
from app.pipeline.recipients import country_of
from app.services.ingest import IngestService
from app.store.deliveries import DeliveryLog
from app.store.records import DeliveryRecord, DeliveryStatus, NewDelivery, id_created_ms
from app.store.replays import ReplayLog

# The statuses a replay may select: a send that failed for good, or (once the status
# exists) one whose outcome is unknown.
REPLAYABLE: tuple[DeliveryStatus, ...] = tuple(
    s for s in get_args(DeliveryStatus) if s in ("failed", "undelivered", "unknown")
)
# Another delivery of the event in one of these reached (or is about to reach) the recipient.
_REACHING: frozenset[str] = frozenset(
    ("queued", "sending", "retrying", "scheduled", "held", "sent", "mocked", "delivered", "read")
)

ReplayAction = Literal["would_send", "replayed", "skipped"]
SkipReason = Literal[
    "not_replayable",  # its status is not one a replay takes
    "already_replayed",
    "already_reached",  # another delivery of its event reached the recipient
    "destination_gone",
    "destination_disabled",
    "not_sendable",  # no recipient or nothing to send
    "opted_out",
    "throttled",
    "blocked_velocity",  # the pumping guard (a number Twilio flagged, a block's limit)
    "capped",  # the recipient's frequency caps
]
# Admission's refusals a replay reports as its own reason.
_REFUSALS: frozenset[str] = frozenset(("opted_out", "throttled", "blocked_velocity", "capped"))

_PAGE = 500  # ids read per round trip while selecting
MAX_SCANNED = 20_000  # ids a selection reads at most (the answer says it was truncated)


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which deliveries to replay (every given criterion must hold)."""

    destination: str | None = None
    statuses: tuple[DeliveryStatus, ...] = REPLAYABLE
    since: datetime | None = None
    until: datetime | None = None
    error_codes: tuple[int, ...] = ()
    delivery_ids: tuple[str, ...] = ()  # these exactly, whatever the criteria above
    limit: int = 100


@dataclass(slots=True)
class ReplayItem:
    """What the replay did (or would do) with one selected delivery."""

    delivery_id: str
    destination: str
    recipient: str | None
    status: str
    error_code: int | None
    action: ReplayAction
    reason: SkipReason | None = None
    detail: str | None = None
    replay_id: str | None = None  # the new delivery (or the earlier replay)

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "destination": self.destination,
            "recipient": self.recipient,
            "status": self.status,
            "error_code": self.error_code,
            "action": self.action,
            "reason": self.reason,
            "detail": self.detail,
            "replay_id": self.replay_id,
        }


@dataclass(slots=True)
class ReplayReport:
    dry_run: bool
    items: list[ReplayItem] = field(default_factory=list)
    truncated: bool = False  # more deliveries matched than the limit (or the scan bound)

    def to_json(self) -> dict[str, Any]:
        counts = {action: 0 for action in get_args(ReplayAction)}
        for item in self.items:
            counts[item.action] += 1
        return {
            "dry_run": self.dry_run,
            "selected": len(self.items),
            **counts,
            "truncated": self.truncated,
            "items": [item.to_json() for item in self.items],
        }


class ReplayService:
    """Plans and runs replays over the delivery log."""

    def __init__(self, deliveries: DeliveryLog, replays: ReplayLog, ingest: IngestService) -> None:
        self._deliveries = deliveries
        self._replays = replays
        self._ingest = ingest

    async def replay(self, selection: ReplaySelection, *, dry_run: bool = True) -> ReplayReport:
        """Replay (or with `dry_run`, only say what would be replayed) the selection."""
        records, truncated = await self._select(selection)
        report = ReplayReport(dry_run, truncated=truncated)
        earlier = await self._replays.replayed_as([r.id for r in records])
        reaching: set[tuple[str, str]] = set()  # (event, recipient) this run sends to
        for record in records:
            item = ReplayItem(
                record.id,
                record.destination,
                record.recipient,
                record.status,
                record.error_code,
                "skipped",
            )
            report.items.append(item)
            if record.status not in REPLAYABLE:
                item.reason, item.detail = "not_replayable", f"its status is {record.status}"
                continue
            if record.id in earlier:
                item.reason, item.replay_id = "already_replayed", earlier[record.id]
                item.detail = f"replayed already as delivery {earlier[record.id]}"
                continue
            new = self._replay_of(record, item)
            if new is None:
                continue
            event_key = (record.event_uuid or record.id, record.recipient or "")
            if event_key in reaching:
                item.reason = "already_reached"
                item.detail = "this run replays another delivery of its event to this recipient"
                continue
            other = await self._reached_by(record)
            if other is not None:
                item.reason = "already_reached"
                item.detail = f"delivery {other} of the same event reached the recipient"
                continue
            if not await self._admissible(new, item):
                continue
            reaching.add(event_key)
            if dry_run:
                item.action = "would_send"
                continue
            await self._send(record, new, item)
        return report

    async def _select(self, selection: ReplaySelection) -> tuple[list[DeliveryRecord], bool]:
        if selection.delivery_ids:
            return await self._deliveries.get_many(dict.fromkeys(selection.delivery_ids)), False
        since_ms = int(selection.since.timestamp() * 1000) if selection.since else None
        until_ms = int(selection.until.timestamp() * 1000) if selection.until else None
        chosen: list[DeliveryRecord] = []
        after: str | None = None
        scanned = 0
        while scanned < MAX_SCANNED:
            ids = await self._replays.candidates(
                selection.statuses, since_ms, until_ms, after, _PAGE
            )
            if not ids:
                return chosen, False
            scanned += len(ids)
            after = ids[-1]
            for record in await self._deliveries.get_many(ids):
                if self._wanted(record, selection):
                    if len(chosen) == selection.limit:
                        return chosen, True
                    chosen.append(record)
        return chosen, True

    @staticmethod
    def _wanted(record: DeliveryRecord, selection: ReplaySelection) -> bool:
        return (
            record.status in selection.statuses
            and (selection.destination is None or record.destination == selection.destination)
            and (not selection.error_codes or record.error_code in selection.error_codes)
        )

    def _replay_of(self, record: DeliveryRecord, item: ReplayItem) -> NewDelivery | None:
        """The new delivery replaying `record`, with today's throttle of its destination;
        None (and `item` says why) when it cannot be replayed."""
        throttle, guarded = None, None
        if not record.destination.startswith("$"):  # "$api": direct sends, no destination
            destination = self._ingest.destinations.get(record.destination)
            if destination is None:
                item.reason = "destination_gone"
                item.detail = f"destination {record.destination!r} is no longer configured"
                return None
            if not destination.config.enabled:
                item.reason = "destination_disabled"
                item.detail = f"destination {record.destination!r} is disabled"
                return None
            throttle, guarded = destination.config.throttle, destination
        if not record.recipient or not (record.body or record.media_urls):
            item.reason, item.detail = "not_sendable", "the delivery has no recipient or body"
            return None
        return NewDelivery(
            destination_id=record.destination,
            mode=record.mode,
            event_identity=f"replay:{record.id}",  # admission's dedupe: one replay only
            event_uuid=record.event_uuid,
            event_name=record.event_name,
            recipient=record.recipient,
            body=record.body,
            encoding=record.encoding,
            segments=record.segments,
            from_number=record.from_number,
            messaging_service_sid=record.messaging_service_sid,
            detail=f"replay of delivery {record.id}",
            throttle_scope=throttle.scope if throttle else None,
            throttle_window_ms=throttle.window * 1000 if throttle else 0,
            media_urls=record.media_urls,
            status_callback=record.status_callback,
            validity_period=record.validity_period,
            # Today's guard of its destination: a replay is a text like any other.
            **(_guard_of(guarded, record) if guarded else {}),
        )

    async def _reached_by(self, record: DeliveryRecord) -> str | None:
        """Another delivery of the record's event that reached its recipient, if any."""
        created_ms = id_created_ms(record.id)
        if not record.event_uuid or not record.recipient or created_ms is None:
            return None
        ids = await self._replays.near_deliveries_to(record.recipient, created_ms)
        for other in await self._deliveries.get_many(i for i in ids if i != record.id):
            if other.event_uuid == record.event_uuid and other.status in _REACHING:
                return other.id
        return None

    async def _admissible(self, new: NewDelivery, item: ReplayItem) -> bool:
        """Admission's own checks, now, read-only; `item` says why not."""
        preview = await self._deliveries.preview(new)
        if preview.duplicate_of:
            item.reason, item.replay_id = "already_replayed", preview.duplicate_of
            item.detail = f"replayed already as delivery {preview.duplicate_of}"
            return False
        check = preview.check
        if check.verdict in _REFUSALS:
            item.reason = cast(SkipReason, check.verdict)
            item.detail = check.detail(new.throttle_window_ms)
            return False
        return True

    async def _send(self, record: DeliveryRecord, new: NewDelivery, item: ReplayItem) -> None:
        [admission] = await self._deliveries.admit([new])
        item.replay_id = admission.delivery_id
        if admission.decision in ("queued", "scheduled"):
            item.action = "replayed"
            item.detail = f"queued as delivery {admission.delivery_id}"
            await self._replays.mark(record.id, admission.delivery_id)
        elif admission.decision == "duplicate":  # a concurrent replay got there first
            item.reason, item.detail = "already_replayed", admission.detail
            await self._replays.mark(record.id, admission.delivery_id)
        else:  # refused between the preview and now (recorded as a skipped delivery)
            refused = admission.decision
            item.reason = cast(SkipReason, refused if refused in _REFUSALS else "throttled")
            item.detail = admission.detail


def _guard_of(destination: Destination, record: DeliveryRecord) -> dict[str, Any]:
    """The guard fields of a replay of `record` (NewDelivery's), as ingest sets them."""
    live = record.mode == "live" and destination.velocity and record.recipient
    return {
        "country": country_of(record.recipient) if live and record.recipient else None,
        "velocity": destination.velocity if live else (),
        "caps": destination.caps if destination.caps.rules else None,
    }
