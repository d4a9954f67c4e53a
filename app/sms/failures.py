"""What can go wrong talking to a provider, and what each failure asks of the sender.

A provider raises these (its own errors subclass them, keeping its words inside its
package); the send path, the services and the API's error handlers catch only these.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorAction(StrEnum):
    """What a provider's error asks of the sender: each provider's error catalog maps
    every code it knows to one of these."""

    RETRY = "retry"  # a passing condition: retry with backoff
    RETRY_SLOWER = "retry_slower"  # too fast for the sender or account: retry, and slow down
    SUPPRESS_RECIPIENT = "suppress_recipient"  # the number cannot take texts: stop sending to it
    OPT_OUT = "opt_out"  # the recipient opted out: record it, never text them again
    PAUSE_DESTINATION = "pause_destination"  # the sender or account is unfit: nothing will pass
    FAIL = "fail"  # this message cannot go as it is; others may
    # The provider's pumping protection flagged the number: fail it; back the number and
    # its block off
    BACK_OFF_NUMBER = "back_off_number"

    @property
    def retries(self) -> bool:
        """True when sending the same message again later may succeed."""
        return self in (ErrorAction.RETRY, ErrorAction.RETRY_SLOWER)


class ProviderError(Exception):
    """Base of every failure talking to a provider."""

    retryable: bool = False

    def __init__(self, message: str, *, text: str | None = None) -> None:
        # `text`: the whole answer in one line, what str(error) says (default: `message`).
        super().__init__(text or message)
        self.message = message


class ProviderRejected(ProviderError):
    """The provider answered with an error: nothing was created.

    `code` is the provider's own error code (kept for the delivery log and its users),
    `action` what its catalog says to do about it, `meaning` what the code means in words
    (None: the catalog does not know it), `retry_after` the seconds it asked us to
    wait (None: it did not say). `conflict`: the request is sound but the message's state
    forbids it now (cancel a message already sent, delete one not finished).
    """

    conflict: bool = False

    def __init__(
        self,
        text: str,
        *,
        http_status: int,
        code: int | None,
        message: str,
        action: ErrorAction,
        more_info: str | None = None,
        retry_after: float | None = None,
        meaning: str | None = None,
    ) -> None:
        super().__init__(message, text=text)
        self.meaning = meaning
        self.http_status = http_status
        self.code = code
        self.more_info = more_info
        self.retry_after = retry_after
        self.action = action
        self.retryable = action.retries


class ProviderUnreachable(ProviderError):
    """The exchange with the provider itself failed.

    `request_sent` says whether the provider may have received the request: creating a
    message is not idempotent, so only failures before sending (connect errors, pool
    timeouts) retry as they are; the others leave the outcome unknown.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.retryable = not request_sent


class Unsupported(ProviderError):
    """The provider cannot do this (test mode fetches nothing, for one)."""
