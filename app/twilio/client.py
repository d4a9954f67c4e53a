"""Twilio's Messages API over one pooled `httpx.AsyncClient`."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx
from pydantic import SecretStr, ValidationError

from app.twilio.errors import TwilioApiError, TwilioTransportError
from app.twilio.models import OutboundMessage, TwilioMessage, TwilioRequest

API_VERSION = "2010-04-01"
# Shown in test-mode traces when no account is configured: the shape of a SID, no real one.
PLACEHOLDER_ACCOUNT_SID = "AC" + "x" * 32

# Failures raised before any byte of the request left this process.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    """Account SID plus who authenticates: the account itself (auth token) or an API key."""

    account_sid: str
    username: str  # the Account SID, or an API Key SID (SK…)
    password: SecretStr

    @classmethod
    def from_values(
        cls,
        account_sid: str | None,
        auth_token: SecretStr | None,
        api_key: str | None,
        api_secret: SecretStr | None,
    ) -> TwilioCredentials | None:
        """Pick API-key auth when a key is configured, else the auth token; None without any."""
        if account_sid is None:
            return None
        if api_key is not None and api_secret is not None:
            return cls(account_sid, api_key, api_secret)
        if auth_token is not None:
            return cls(account_sid, account_sid, auth_token)
        return None


class TwilioClient:
    """Creates messages through Twilio's REST API 2010-04-01."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: TwilioCredentials | None,
        base_url: str,
        status_callback_url: str | None = None,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._status_callback_url = status_callback_url
        self._auth = (
            httpx.BasicAuth(credentials.username, credentials.password.get_secret_value())
            if credentials
            else None
        )

    def message_request(self, message: OutboundMessage) -> TwilioRequest:
        """The exact request `send_message` makes; test mode records it instead of sending."""
        account_sid = (
            self._credentials.account_sid if self._credentials else PLACEHOLDER_ACCOUNT_SID
        )
        form = {"To": message.to, "Body": message.body}
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        elif message.from_number:
            form["From"] = message.from_number
        if self._status_callback_url:
            form["StatusCallback"] = self._status_callback_url
        return TwilioRequest(
            method="POST",
            url=f"{self._base_url}/{API_VERSION}/Accounts/{account_sid}/Messages.json",
            form=form,
            auth_username=self._credentials.username if self._credentials else account_sid,
        )

    async def send_message(self, message: OutboundMessage) -> TwilioMessage:
        """Create the message; raise `TwilioApiError` or `TwilioTransportError` on failure."""
        if self._auth is None:
            raise TwilioTransportError("no Twilio credentials configured", request_sent=False)
        request = self.message_request(message)
        try:
            response = await self._http.post(request.url, data=request.form, auth=self._auth)
        except _NOT_SENT as exc:
            raise TwilioTransportError(_describe(exc), request_sent=False) from None
        except httpx.HTTPError as exc:
            raise TwilioTransportError(_describe(exc), request_sent=True) from None
        if response.is_success:
            try:
                return TwilioMessage.model_validate_json(response.content)
            except ValidationError:
                raise TwilioTransportError(
                    f"Twilio answered {response.status_code} with an unreadable body",
                    request_sent=True,
                ) from None
        raise _api_error(response)


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _api_error(response: httpx.Response) -> TwilioApiError:
    code: int | None = None
    message = response.text[:300] or response.reason_phrase
    more_info: str | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        raw_code = payload.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(payload.get("message") or message)
        more_info = payload.get("more_info") if isinstance(payload.get("more_info"), str) else None
    return TwilioApiError(
        response.status_code,
        code,
        message,
        more_info,
        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
    )


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
