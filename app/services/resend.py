"""Resend one failed delivery: the console's button, the one-delivery case of replay.

It runs `ReplayService` on that one id (not a second implementation): admission checks
the copy again now (the suppression list, the destination's throttle window), a
recipient its event already reached is skipped, and it is deduplicated by the original's
id with replay's own marker, so a resend, a replay, or both, send it once.
"""

from __future__ import annotations

from app.errors import Conflict, NotFound
from app.services.replay import REPLAYABLE, ReplaySelection, ReplayService
from app.store.deliveries import Admission
from app.store.records import DeliveryStatus

# What can be resent: the provider never delivered it (replay's own statuses).
RESENDABLE: frozenset[DeliveryStatus] = frozenset(REPLAYABLE)


async def resend(replay: ReplayService, delivery_id: str) -> Admission:
    """Replay `delivery_id` now, answered as admission answers: `queued` (the copy's id),
    `duplicate` (the earlier copy's id), `opted_out` or `throttled` (the original's id);
    raises NotFound, or Conflict when it cannot be resent at all."""
    report = await replay.replay(ReplaySelection(delivery_ids=(delivery_id,)), dry_run=False)
    if not report.items:
        raise NotFound(f"no delivery with id {delivery_id!r} (unknown or past retention)")
    [item] = report.items
    if item.action == "replayed" and item.replay_id:
        return Admission(item.destination, "queued", item.replay_id, item.detail)
    if item.reason == "already_replayed" and item.replay_id:
        return Admission(item.destination, "duplicate", item.replay_id, item.detail)
    if item.reason in ("opted_out", "throttled"):
        return Admission(item.destination, item.reason, delivery_id, item.detail)
    raise Conflict(f"delivery {delivery_id} cannot be resent: {item.detail}")
