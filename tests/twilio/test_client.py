"""The Twilio client against the fake Twilio HTTP server."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.errors import TwilioApiError, TwilioTransportError
from app.twilio.models import OutboundMessage
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.fake_twilio import FakeTwilio, ScriptedResponse

API_KEY = "SK" + "b2" * 16
MESSAGE = OutboundMessage(to="+14155552671", body="Hi ✓", from_number="+15005550006")


def token_credentials() -> TwilioCredentials | None:
    return TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)


async def test_send_message_form_and_auth(fake_twilio: FakeTwilio) -> None:
    async with httpx.AsyncClient() as http:
        client = TwilioClient(
            http,
            token_credentials(),
            fake_twilio.base_url,
            "https://sms.example.com/v1/twilio/status",
        )
        created = await client.send_message(MESSAGE)
    assert created.sid.startswith("SM") and created.status == "queued"
    [request] = fake_twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": "+14155552671",
        "From": "+15005550006",
        "Body": "Hi ✓",
        "StatusCallback": "https://sms.example.com/v1/twilio/status",
    }
    assert request.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)


async def test_api_key_auth_keeps_account_in_path(fake_twilio: FakeTwilio) -> None:
    credentials = TwilioCredentials.from_values(ACCOUNT_SID, None, API_KEY, SecretStr("key-secret"))
    message = OutboundMessage(to="+14155552671", body="x", messaging_service_sid="MG" + "0" * 32)
    async with httpx.AsyncClient() as http:
        await TwilioClient(http, credentials, fake_twilio.base_url).send_message(message)
    [request] = fake_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.basic_auth == (API_KEY, "key-secret")
    assert request.form["MessagingServiceSid"] == "MG" + "0" * 32 and "From" not in request.form


async def test_twilio_error_json_becomes_typed_error(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(fake_twilio.fail_with(400, 21211, "The 'To' number is not valid."))
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    error = caught.value
    assert (error.http_status, error.code, error.retryable) == (400, 21211, False)
    assert error.more_info == "https://www.twilio.com/docs/errors/21211"


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (401, False), (404, False)]
)
async def test_retryable_statuses(fake_twilio: FakeTwilio, status: int, retryable: bool) -> None:
    fake_twilio.enqueue(
        ScriptedResponse(
            status, {"code": 20000 + status, "message": "m"}, headers={"Retry-After": "7"}
        )
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == 7.0


async def test_non_json_error_body(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(502))
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.code is None and caught.value.retryable


async def test_timeout_after_sending_is_not_retryable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(201, delay=1.0))
    async with httpx.AsyncClient(timeout=0.2) as http:
        with pytest.raises(TwilioTransportError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.request_sent and not caught.value.retryable


async def test_connection_refused_is_retryable() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioTransportError) as caught:
            await TwilioClient(http, token_credentials(), "http://127.0.0.1:9").send_message(
                MESSAGE
            )
    assert not caught.value.request_sent and caught.value.retryable


def test_redacted_request_hides_the_secret() -> None:
    client = TwilioClient(httpx.AsyncClient(), token_credentials(), "https://api.twilio.com")
    redacted = client.message_request(MESSAGE).redacted()
    assert AUTH_TOKEN not in str(redacted)
    assert redacted["auth"] == {"username": ACCOUNT_SID, "password": "[redacted]"}
