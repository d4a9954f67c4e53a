"""Twilio failures as typed errors: nothing past `app/twilio/` sees a raw response."""

from __future__ import annotations

from app.twilio.error_catalog import ErrorAction, action_for

# DELETE of a message Twilio has not finished processing ("Cannot delete this resource before
# it is complete"): the request is fine, only early, so the API layer answers 409 Conflict.
MESSAGE_NOT_COMPLETE_ERROR_CODE = 20009
# Canceling a message that is no longer `scheduled` ("This message cannot be canceled"):
# also a state conflict, not a malformed request.
MESSAGE_NOT_CANCELABLE_ERROR_CODE = 30409


class TwilioError(Exception):
    """Base of every failure talking to Twilio."""

    retryable: bool = False


class TwilioApiError(TwilioError):
    """Twilio answered with an error (its JSON: code, message, more_info, status)."""

    def __init__(
        self,
        http_status: int,
        code: int | None,
        message: str,
        more_info: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            f"Twilio {http_status}" + (f" error {code}" if code else "") + f": {message}"
        )
        self.http_status = http_status
        self.code = code
        self.message = message
        self.more_info = more_info
        self.retry_after = retry_after
        # The catalog's word for the code; an unknown code by its status (429/5xx: not now).
        self.action: ErrorAction = action_for(code, http_status)
        self.retryable = self.action.retries


class TwilioTransportError(TwilioError):
    """The HTTP exchange itself failed.

    `request_sent` says whether Twilio may have received the request: creating a message is
    not idempotent, so only failures before sending (connect errors, pool timeouts) retry.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.request_sent = request_sent
        self.retryable = not request_sent
