"""Who holds a message until its send time: the provider when it can, else our delayed
queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from app.sms.provider import ScheduleWindow

# "provider": sent at once with its send time, the provider holds it (and answers
# "scheduled"); "local": held in our delayed queue until due.
Schedule = Literal["now", "provider", "local"]


def plan_schedule(
    send_at: datetime | None,
    now: datetime,
    has_service: bool,
    horizon: timedelta,
    window: ScheduleWindow | None,
) -> Schedule:
    """Choose how to hold a message until `send_at` (None or a past time: send now).

    The provider holds it when `send_at` is inside its `window` and the message goes
    through a sender pool (`has_service`); anything else we hold. Raises ValueError (the
    reason) beyond `horizon`: the delivery log's retention, since a record must outlive the
    message it describes.
    """
    if send_at is None or send_at <= now:
        return "now"
    ahead = send_at - now
    if ahead > horizon:
        raise ValueError(
            f"is more than {horizon.days} days ahead, beyond SMS_DELIVERY_RETENTION "
            f"({horizon.days} days) during which we keep its record"
        )
    if has_service and window is not None and window.earliest < ahead <= window.latest:
        return "provider"
    return "local"
