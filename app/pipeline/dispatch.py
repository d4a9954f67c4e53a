"""Stage 6: one send attempt to Twilio, and what to do next (done, retry later, give up)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.twilio.client import TwilioClient
from app.twilio.errors import TwilioApiError, TwilioError, TwilioTransportError
from app.twilio.models import OutboundMessage


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; Twilio's Retry-After wins when it gives one,
    up to the same cap (a record waiting longer than its work allows could expire)."""

    max_attempts: int
    base_delay: float
    max_delay: float

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after))
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # "Equal jitter": at least half the backoff, so retries never bunch up near zero.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class Sent:
    sid: str
    twilio_status: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    delay: float
    error: TwilioError
    note: str = ""  # added to the retry's detail (e.g. the sender's pace was cut)


@dataclass(frozen=True, slots=True)
class Failed:
    """Twilio refused for good: nothing was created (the recipient's window is freed)."""

    error: TwilioError


@dataclass(frozen=True, slots=True)
class Unknown:
    """The request left and no usable answer came back (a deadline, a dropped connection,
    an unreadable body): Twilio may have created the message. Never retried as is: the
    resolver asks Twilio first (app/services/resolver.py)."""

    error: TwilioTransportError


Outcome = Sent | RetryLater | Failed | Unknown


def mocked_send(sid: str) -> Sent:
    """Test mode: send nothing (`sid`: the delivery's mocked SID, derived from its id and
    so not stored). The request it stands for is rebuilt from the delivery record when the
    record is read (see `Services.mocked_request`), not stored."""
    return Sent(sid=sid, twilio_status="mocked")


async def attempt_send(
    twilio: TwilioClient, message: OutboundMessage, attempt: int, policy: RetryPolicy
) -> Outcome:
    """Make attempt number `attempt` and classify the result."""
    try:
        created = await twilio.send_message(message)
    except TwilioTransportError as err:
        if err.request_sent:
            return Unknown(err)
        if attempt < policy.max_attempts:
            return RetryLater(policy.delay(attempt), err)
        return Failed(err)
    except TwilioError as err:
        if err.retryable and attempt < policy.max_attempts:
            retry_after = err.retry_after if isinstance(err, TwilioApiError) else None
            return RetryLater(policy.delay(attempt, retry_after), err)
        return Failed(err)
    return Sent(sid=created.sid, twilio_status=created.status or "queued")
