"""Who holds a message until its send time: Twilio when it can, else our delayed queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

# Twilio holds a scheduled message itself only within this window, and only when it is
# sent through a Messaging Service; anything else we hold in our own delayed queue.
TWILIO_SCHEDULE_MIN = timedelta(minutes=15)
TWILIO_SCHEDULE_MAX = timedelta(days=35)

Schedule = Literal["now", "twilio", "local"]


def plan_schedule(
    send_at: datetime | None, now: datetime, has_service: bool, horizon: timedelta
) -> Schedule:
    """Choose how to hold a message until `send_at` (None or a past time: send now).

    Raises ValueError (the reason) beyond `horizon`: the delivery log's retention, since a
    record must outlive the message it describes.
    """
    if send_at is None or send_at <= now:
        return "now"
    ahead = send_at - now
    if ahead > horizon:
        raise ValueError(
            f"is more than {horizon.days} days ahead, beyond SMS_DELIVERY_RETENTION "
            f"({horizon.days} days) during which we keep its record"
        )
    if has_service and TWILIO_SCHEDULE_MIN < ahead <= TWILIO_SCHEDULE_MAX:
        return "twilio"
    return "local"
