"""Resend one failed delivery: a new delivery with the same message, through admission.

Until replay (issue 13, item 4) exists this is its one-delivery case, done with what
there is: the copy goes through `DeliveryLog.admit` like any event, so admission checks
it again now — the suppression list, the destination's throttle window — and it is
deduplicated by the original's id, so resending twice sends once.
"""

from __future__ import annotations

from app.destinations import DestinationSet
from app.errors import Conflict, NotFound
from app.store.deliveries import Admission, DeliveryLog
from app.store.records import DeliveryStatus, NewDelivery

# What can be resent: Twilio never delivered it. Anything else reached, or may still reach,
# the recipient (or was never meant to: skipped).
RESENDABLE: frozenset[DeliveryStatus] = frozenset({"failed", "undelivered"})


async def resend(
    deliveries: DeliveryLog, destinations: DestinationSet, delivery_id: str
) -> Admission:
    """Admit a copy of `delivery_id` (failed or undelivered); raises NotFound / Conflict."""
    record = await deliveries.get(delivery_id)
    if record is None:
        raise NotFound(f"no delivery with id {delivery_id!r} (unknown or past retention)")
    if record.status not in RESENDABLE:
        raise Conflict(
            f"delivery {delivery_id} is {record.status}: only failed or undelivered ones resend"
        )
    if not record.recipient or (record.body is None and not record.media_urls):
        raise Conflict(f"delivery {delivery_id} has no recipient or message to resend")
    destination = destinations.get(record.destination)
    throttle = destination.config.throttle if destination else None
    [admission] = await deliveries.admit(
        [
            NewDelivery(
                destination_id=record.destination,
                mode=record.mode,
                # The original's id as the event identity: a second resend is a duplicate.
                event_identity=f"resend:{record.id}",
                event_uuid=record.event_uuid,
                event_name=record.event_name,
                recipient=record.recipient,
                body=record.body or "",
                encoding=record.encoding,
                segments=record.segments,
                from_number=record.from_number,
                messaging_service_sid=record.messaging_service_sid,
                detail=f"resend of {record.id}",
                throttle_scope=throttle.scope if throttle else None,
                throttle_window_ms=throttle.window * 1000 if throttle else 0,
                media_urls=record.media_urls,
                status_callback=record.status_callback,
                validity_period=record.validity_period,
            )
        ]
    )
    return admission
