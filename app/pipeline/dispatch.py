"""Stage 6: one send attempt through the provider, and what to do next (done, retry
later, give up)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.sms.failures import ProviderError, ProviderRejected, ProviderUnreachable
from app.sms.message import OutboundMessage
from app.sms.provider import Provider


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; the provider's Retry-After wins when it gives one,
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
    """The provider accepted it: its id there and its status (test mode's: "mocked")."""

    provider_id: str
    status: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    delay: float
    error: ProviderError
    note: str = ""  # added to the retry's detail (e.g. the sender's pace was cut)


@dataclass(frozen=True, slots=True)
class Failed:
    """The provider refused for good: nothing was created (the recipient's window is freed)."""

    error: ProviderError


@dataclass(frozen=True, slots=True)
class Unknown:
    """The request left and no usable answer came back (a deadline, a dropped connection,
    an unreadable body): the provider may have created the message. Never retried as is:
    the resolver asks the provider first (app/services/resolver.py)."""

    error: ProviderUnreachable


Outcome = Sent | RetryLater | Failed | Unknown


async def attempt_send(
    provider: Provider, message: OutboundMessage, attempt: int, policy: RetryPolicy
) -> Outcome:
    """Make attempt number `attempt` and classify the result."""
    try:
        created = await provider.send(message)
    except ProviderUnreachable as err:
        if err.request_sent:
            return Unknown(err)
        if attempt < policy.max_attempts:
            return RetryLater(policy.delay(attempt), err)
        return Failed(err)
    except ProviderError as err:
        if err.retryable and attempt < policy.max_attempts:
            retry_after = err.retry_after if isinstance(err, ProviderRejected) else None
            return RetryLater(policy.delay(attempt, retry_after), err)
        return Failed(err)
    return Sent(created.id, created.status)
