"""Twilio failures as typed errors: nothing past `app/twilio/` sees a raw response.

Each is one of the provider seam's failures (`app/sms/failures.py`), which is all the rest
of the service catches.
"""

from __future__ import annotations

from app.sms.failures import ProviderError, ProviderRejected, ProviderUnreachable
from app.twilio.error_catalog import CATALOG, action_for

# DELETE of a message Twilio has not finished processing ("Cannot delete this resource before
# it is complete"): the request is fine, only early, so the API layer answers 409 Conflict.
MESSAGE_NOT_COMPLETE_ERROR_CODE = 20009
# Canceling a message that is no longer `scheduled` ("This message cannot be canceled"):
# also a state conflict, not a malformed request.
MESSAGE_NOT_CANCELABLE_ERROR_CODE = 30409
_STATE_CONFLICTS = frozenset({MESSAGE_NOT_COMPLETE_ERROR_CODE, MESSAGE_NOT_CANCELABLE_ERROR_CODE})


class TwilioError(ProviderError):
    """Base of every failure talking to Twilio."""


class TwilioApiError(TwilioError, ProviderRejected):
    """Twilio answered with an error (its JSON: code, message, more_info, status)."""

    def __init__(
        self,
        http_status: int,
        code: int | None,
        message: str,
        more_info: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        known = CATALOG.get(code) if code is not None else None
        ProviderRejected.__init__(
            self,
            f"Twilio {http_status}" + (f" error {code}" if code else "") + f": {message}",
            http_status=http_status,
            code=code,
            message=message,
            # The catalog's word for the code; an unknown code by its status (429/5xx: not now).
            action=action_for(code, http_status),
            more_info=more_info,
            retry_after=retry_after,
            meaning=known.meaning if known else None,
        )
        self.conflict = code in _STATE_CONFLICTS


class TwilioTransportError(TwilioError, ProviderUnreachable):
    """The HTTP exchange itself failed.

    `request_sent` says whether Twilio may have received the request: creating a message is
    not idempotent, so only failures before sending (connect errors, pool timeouts) retry.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        ProviderUnreachable.__init__(self, message, request_sent=request_sent)
