"""Twilio's Messages API over one pooled `httpx.AsyncClient`."""

from __future__ import annotations

import email.utils
import functools
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from app.sms.message import OutboundMessage
from app.twilio.errors import TwilioApiError, TwilioTransportError
from app.twilio.models import (
    CHANNEL_PREFIXES,
    MessagePage,
    TwilioMessage,
    TwilioRequest,
)

__all__ = [
    "API_VERSION",
    "MESSAGE_SID_PATTERN",
    "PLACEHOLDER_ACCOUNT_SID",
    "MessagePage",
    "TwilioClient",
    "TwilioCredentials",
    "TwilioMessage",
]

API_VERSION = "2010-04-01"
# Shown in test-mode traces when no account is configured: the shape of a SID, no real one.
PLACEHOLDER_ACCOUNT_SID = "AC" + "x" * 32
# Twilio's own pattern for a Message SID (SM… for SMS, MM… for MMS); checked before a SID
# goes into a URL so that nothing odd (slashes, dots, query characters) ever reaches the path.
MESSAGE_SID_PATTERN = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
PAGE_SIZE_RANGE = range(1, 1001)

# Failures raised before any byte of the request left this process.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Placeholders `raw_request` expands to the account SID.
_ACCOUNT_PLACEHOLDERS = ("${TWILIO_ACCOUNT_SID}", "$TWILIO_ACCOUNT_SID", "{AccountSid}")

_Model = TypeVar("_Model", bound=BaseModel)


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
    """Every operation on Twilio's Message resource (REST API 2010-04-01).

    All of them go through `_exchange` / `_call`, the one place that turns httpx failures
    and Twilio's error answers into `TwilioTransportError` / `TwilioApiError`. The client
    never retries by itself: callers decide, using `retryable` and `request_sent`.
    """

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

    # --- create ------------------------------------------------------------------------

    def message_request(self, message: OutboundMessage) -> TwilioRequest:
        """The exact request `send_message` makes; test mode records it instead of sending."""
        account_sid = (
            self._credentials.account_sid if self._credentials else PLACEHOLDER_ACCOUNT_SID
        )
        # WhatsApp is addressed as `whatsapp:+E.164` on both ends (Twilio's channel address).
        prefix = CHANNEL_PREFIXES[message.channel]
        form: list[tuple[str, str]] = [("To", prefix + message.to)]
        if message.body:  # a media-only MMS, or a Content template, carries no Body at all
            form.append(("Body", message.body))
        if message.messaging_service_sid:
            form.append(("MessagingServiceSid", message.messaging_service_sid))
        elif message.from_number:
            form.append(("From", prefix + message.from_number))
        if message.content_sid:
            form.append(("ContentSid", message.content_sid))
            if message.content_variables:
                form.append(("ContentVariables", message.content_variables))
        # Twilio takes several media as the same key repeated, one field per URL.
        form.extend(("MediaUrl", url) for url in message.media_urls)
        status_callback = message.status_callback or self._status_callback_url
        if status_callback and not message.status_callback and message.callback_ref:
            status_callback = f"{status_callback}/{message.callback_ref}"
        if status_callback:
            form.append(("StatusCallback", status_callback))
        if message.validity_period is not None:
            form.append(("ValidityPeriod", str(message.validity_period)))
        if message.send_at is not None:
            form.append(("ScheduleType", "fixed"))
            form.append(("SendAt", _iso_utc(message.send_at)))
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
        response = await self._call("POST", request.url, form=request.form)
        return _parse(TwilioMessage, response)

    # --- fetch / list ------------------------------------------------------------------

    async def fetch_message(self, sid: str) -> TwilioMessage:
        """GET one message by SID (`SM…` / `MM…`; anything else is a ValueError)."""
        response = await self._call("GET", self._message_url(sid))
        return _parse(TwilioMessage, response)

    async def list_messages(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        date_sent: date | None = None,
        date_sent_before: date | None = None,
        date_sent_after: date | None = None,
        page_size: int = 50,
        page_uri: str | None = None,
    ) -> MessagePage:
        """One page of the account's messages, newest first, optionally filtered.

        Twilio filters dates by their GMT day: `date_sent` is that day, `date_sent_before` /
        `date_sent_after` are "on or before" / "on or after". A `date` or a tz-aware
        `datetime` is sent as `YYYY-MM-DDTHH:MM:SSZ`, the spec's date-time format (and what
        Twilio's own SDK sends). `page_uri` is a previous page's `next_page_uri`: it is
        fetched as is and the filters are ignored; it must point into this account's
        Messages.json, or ValueError (a cursor must not steer the client elsewhere).
        """
        if page_uri is not None:
            return _parse(MessagePage, await self._call("GET", self._page_url(page_uri)))
        if page_size not in PAGE_SIZE_RANGE:
            raise ValueError("page_size must be between 1 and 1000")
        params: list[tuple[str, str]] = []
        for name, value in (("To", to), ("From", from_)):
            if value is not None:
                params.append((name, value))
        for name, day in (
            ("DateSent", date_sent),
            ("DateSent<", date_sent_before),
            ("DateSent>", date_sent_after),
        ):
            if day is not None:
                params.append((name, _iso_utc(day)))
        params.append(("PageSize", str(page_size)))
        response = await self._call("GET", self._account_url("Messages.json"), params=params)
        return _parse(MessagePage, response)

    # --- update / delete ---------------------------------------------------------------

    async def update_message(
        self,
        sid: str,
        *,
        body: str | None = None,
        status: Literal["canceled"] | None = None,
    ) -> TwilioMessage:
        """POST an update: `body=""` redacts the text, `status="canceled"` cancels a
        scheduled message. Twilio accepts no other body and no other status."""
        if body is None and status is None:
            raise ValueError("nothing to update: give body and/or status")
        if status not in (None, "canceled"):
            raise ValueError("the only status a message can be updated to is 'canceled'")
        form: list[tuple[str, str]] = []
        if body is not None:
            form.append(("Body", body))  # an empty Body is sent: that is the redaction
        if status is not None:
            form.append(("Status", status))
        response = await self._call("POST", self._message_url(sid), form=form)
        return _parse(TwilioMessage, response)

    async def cancel_message(self, sid: str) -> TwilioMessage:
        """Cancel a `scheduled` message (Twilio error 30409 once it is past that)."""
        return await self.update_message(sid, status="canceled")

    async def redact_message(self, sid: str) -> TwilioMessage:
        """Blank the stored text of a message (its body becomes "")."""
        return await self.update_message(sid, body="")

    async def delete_message(self, sid: str) -> None:
        """DELETE the message; Twilio answers 204, or error 20009 while it is not complete."""
        await self._call("DELETE", self._message_url(sid))

    # --- raw ---------------------------------------------------------------------------

    async def raw_request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | Sequence[str]] | None = None,
        form: Mapping[str, str | Sequence[str]] | None = None,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        # httpx's timeout; through AiohttpTransport its `read` value is the whole call's deadline.
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109
    ) -> httpx.Response:
        """Any request to the 2010-04-01 API with our credentials, for operators.

        `path` is relative to `{base_url}/2010-04-01` (a path Twilio itself returns, starting
        with `/2010-04-01/`, is taken as is) and must start with `/`; absolute URLs are
        refused (ValueError) so credentials only ever go to the configured base URL.
        `$TWILIO_ACCOUNT_SID`, `${TWILIO_ACCOUNT_SID}` and `{AccountSid}` in it become the
        account SID. The response comes back as is, whatever its status: no error mapping,
        no parsing. Only transport failures raise (`TwilioTransportError`), as does a missing
        configuration. `timeout=None` means the pooled client's default.
        """
        if self._credentials is None:
            raise TwilioTransportError("no Twilio credentials configured", request_sent=False)
        parts = urlsplit(path)
        if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"not a path under /{API_VERSION}: {path!r}")
        for placeholder in _ACCOUNT_PLACEHOLDERS:
            path = path.replace(placeholder, self._credentials.account_sid)
        if not path.startswith(f"/{API_VERSION}/"):
            path = f"/{API_VERSION}{path}"
        return await self._exchange(
            method.upper(),
            self._base_url + path,
            params=params,
            data=form,
            json=json,
            files=files,
            headers=headers,
            timeout=timeout,
        )

    # --- plumbing ----------------------------------------------------------------------

    def _account_sid(self) -> str:
        if self._credentials is None:
            raise TwilioTransportError("no Twilio credentials configured", request_sent=False)
        return self._credentials.account_sid

    def _account_url(self, resource: str) -> str:
        return f"{self._base_url}/{API_VERSION}/Accounts/{self._account_sid()}/{resource}"

    def _message_url(self, sid: str) -> str:
        if not isinstance(sid, str) or not MESSAGE_SID_PATTERN.fullmatch(sid):
            raise ValueError(f"not a Twilio message SID (SM…/MM… + 32 hex digits): {sid!r}")
        return self._account_url(f"Messages/{sid}.json")

    def _page_url(self, page_uri: str) -> str:
        """The absolute URL of a `next_page_uri`, refused unless it is this account's list."""
        expected_path = f"/{API_VERSION}/Accounts/{self._account_sid()}/Messages.json"
        parts = urlsplit(page_uri)
        if (
            parts.scheme
            or parts.netloc
            or parts.fragment
            or parts.path != expected_path
            or not page_uri.startswith(expected_path)  # no leading junk urlsplit tolerates
        ):
            raise ValueError(f"page_uri is not a page of this account's messages: {page_uri!r}")
        return self._base_url + page_uri

    async def _call(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        form: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        """Make one API call; a non-2xx answer raises `TwilioApiError`."""
        # The form is encoded here, not by httpx, so repeated keys go out in wire order.
        response = await self._exchange(
            method,
            url,
            params=params,
            content=urlencode(form).encode() if form is not None else None,
            headers={"Content-Type": _FORM_CONTENT_TYPE} if form is not None else None,
        )
        if not response.is_success:
            raise _api_error(response)
        return response

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        content: bytes | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        # httpx's timeout; through AiohttpTransport its `read` value is the whole call's deadline.
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109
    ) -> httpx.Response:
        """Send one authenticated request; transport failures raise `TwilioTransportError`.

        `request_sent` is False only when nothing left this process (connect errors, pool
        timeouts). GET and DELETE would be safe to repeat either way, but retrying is the
        caller's call, so every method is classified the same way. `timeout=None` keeps the
        pooled client's own timeout (for httpx, None would mean "wait forever").
        """
        if self._auth is None:
            raise TwilioTransportError("no Twilio credentials configured", request_sent=False)
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            return await self._http.request(
                method,
                _parsed_url(url),
                params=params,
                content=content,
                data=data,
                json=json,
                files=files,
                headers=headers,
                auth=self._auth,
                **options,
            )
        except _NOT_SENT as exc:
            raise TwilioTransportError(_describe(exc), request_sent=False) from None
        except httpx.HTTPError as exc:
            raise TwilioTransportError(_describe(exc), request_sent=True) from None


# The send URL is the same for every message: parse it once, not per request (~5% of a
# worker's CPU).
_parsed_url = functools.lru_cache(maxsize=256)(httpx.URL)


def _parse(model: type[_Model], response: httpx.Response) -> _Model:
    """A 2xx body as `model`; an unreadable one is a transport-level failure (sent)."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise TwilioTransportError(
            f"Twilio answered {response.status_code} with an unreadable body",
            request_sent=True,
        ) from None


def _iso_utc(moment: date) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC: Twilio's SendAt / DateSent format (a date is midnight)."""
    if isinstance(moment, datetime):
        if moment.utcoffset() is None:
            raise ValueError("datetimes sent to Twilio must be timezone-aware")
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT00:00:00Z")


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
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def retry_after_seconds(value: str | None) -> float | None:
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
