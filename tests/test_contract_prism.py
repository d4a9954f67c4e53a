"""Contract: the requests our Twilio client builds are valid for Twilio's own OpenAPI
description, as checked by Stoplight Prism serving `../shared/twilio/twilio_api_v2010.json`
(it validates path, auth, every form field's type, pattern and format)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.errors import TwilioApiError
from app.twilio.models import OutboundMessage
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, REPO, RunningService, free_port, posthog_webhook

PRISM = REPO / ".tools" / "node_modules" / ".bin" / "prism"
SPEC = REPO.parent / "shared" / "twilio" / "twilio_api_v2010.json"


@pytest.fixture(scope="module")
def prism_url() -> Iterator[str]:
    if not (PRISM.exists() and SPEC.exists()):
        if os.environ.get("SMS_REQUIRE_PRISM"):
            pytest.fail(f"Prism or the spec is missing ({PRISM}, {SPEC}); run `make prism`")
        pytest.skip("Prism not installed (make prism)")
    port = free_port()
    process = subprocess.Popen(
        [str(PRISM), "mock", "-p", str(port), "-h", "127.0.0.1", str(SPEC)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("Prism did not start")
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=10)


def token_auth() -> TwilioCredentials | None:
    return TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)


def key_auth() -> TwilioCredentials | None:
    return TwilioCredentials.from_values(ACCOUNT_SID, None, "SK" + "c3" * 16, SecretStr("s"))


@pytest.mark.parametrize(
    ("credentials", "message", "callback"),
    [
        (token_auth, OutboundMessage("+14155552671", "Hi 👋", from_number="+15005550006"), None),
        (
            key_auth,
            OutboundMessage("+14155552671", "x" * 1600, messaging_service_sid="MG" + "d4" * 16),
            "https://sms.example.com/v1/twilio/status",
        ),
    ],
)
async def test_send_request_is_valid_for_twilios_spec(
    prism_url: str,
    credentials: Callable[[], TwilioCredentials | None],
    message: OutboundMessage,
    callback: str | None,
) -> None:
    async with httpx.AsyncClient() as http:
        client = TwilioClient(http, credentials(), prism_url, callback)
        created = await client.send_message(message)
    # Prism answers with Twilio's own 201 example, parsed into our model.
    assert created.sid.startswith("SM") and created.status


async def test_prism_rejects_what_twilio_would(prism_url: str) -> None:
    # The control: an invalid request is refused, so the passing test above means something.
    bad_sender = OutboundMessage("+14155552671", "hi", messaging_service_sid="MG123")
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_auth(), prism_url).send_message(bad_sender)
    assert caught.value.http_status == 422


def test_service_sends_through_prism(
    prism_url: str, start_service: Callable[..., RunningService]
) -> None:
    service = start_service(
        """
destinations:
  - {id: contract, body: "Hello {{ person.name }}", from: "+15005550006"}
""",
        twilio_base_url=prism_url,
        public_base_url="https://sms.example.com",
    )
    answer = service.post_events(posthog_webhook()).json()
    record = service.wait_for_status(answer["results"][0]["deliveries"][0]["delivery_id"], "sent")
    assert record["twilio_sid"].startswith("SM")
