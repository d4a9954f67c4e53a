"""Contract: the requests our Twilio client builds are valid for Twilio's own OpenAPI
description, as checked by Stoplight Prism serving `../shared/twilio/twilio_api_v2010.json`
(it validates path, auth, every form field's type, pattern and format)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from pydantic import SecretStr

from app.sms.message import OutboundMessage
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.errors import TwilioApiError
from bench.procs import free_port
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, RunningService, posthog_webhook
from tests.prism import prism_available, start_prism, stop_prism, wait_ready


@pytest.fixture(scope="module")
def prism_url() -> Iterator[str]:
    if not prism_available():
        if os.environ.get("SMS_REQUIRE_PRISM"):
            pytest.fail("Prism or Twilio's description is missing; run `make prism`")
        pytest.skip("Prism not installed (make prism)")
    port = free_port()
    process = start_prism(port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=90, process=process)
        yield url
    finally:
        stop_prism(process)


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
        (  # MMS: ten media URLs (Twilio's limit), a validity period
            token_auth,
            OutboundMessage(
                "+14155552671",
                "receipt",
                from_number="+15005550006",
                media_urls=tuple(f"https://cdn.example.com/r/{i}.png" for i in range(10)),
                validity_period=600,
            ),
            None,
        ),
        (  # WhatsApp, business-initiated: a Content template and its variables
            token_auth,
            OutboundMessage(
                "+14155552671",
                "",
                from_number="+14155238886",
                channel="whatsapp",
                content_sid="HX" + "ab" * 16,
                content_variables='{"1": "Ada", "2": "12:30"}',
            ),
            None,
        ),
        (  # WhatsApp in the 24-hour session: a body and one media, through a service
            key_auth,
            OutboundMessage(
                "+14155552671",
                "x" * 1024,
                messaging_service_sid="MG" + "d4" * 16,
                media_urls=("https://cdn.example.com/r/1.png",),
                channel="whatsapp",
            ),
            None,
        ),
    ],
)
async def test_send_request_is_valid_for_twilios_spec(
    prism_url: str,
    credentials: Callable[[], TwilioCredentials | None],
    message: OutboundMessage,
    callback: str | None,
) -> None:
    # Media rows go through PrismArrayForm (below): Prism misreads MediaUrl otherwise.
    async with httpx.AsyncClient(transport=PrismArrayForm()) as http:
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


async def test_prism_rejects_a_bad_content_sid(prism_url: str) -> None:
    # The control for the WhatsApp rows: ContentSid's pattern is checked.
    bad = OutboundMessage("+14155552671", "", from_number="+14155238886", content_sid="HX1")
    async with httpx.AsyncClient() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_auth(), prism_url).send_message(bad)
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


# --- every other message operation ----------------------------------------------------

MEDIA = ("https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg")
SERVICE_SID = "MG" + "d4" * 16
MESSAGE_SID = "SM" + "e5" * 16
# The account of the spec's examples: Prism's list answers carry cursors for it.
EXAMPLE_ACCOUNT_SID = "AC" + "a" * 32


class PrismArrayForm(httpx.AsyncBaseTransport):
    """Rewrites repeated form keys (`MediaUrl=a&MediaUrl=b`) to `MediaUrl[]=a&MediaUrl[]=b`,
    and a single `MediaUrl` (an array in the description) likewise.

    Prism 5 reads a repeated urlencoded key as one string and then fails the array
    check (stoplightio/prism#2473); the `[]` spelling is the one it reads as an array.
    Only the key spelling changes and every other field is validated as usual (Prism does
    not check the items' `uri` format either way). Twilio itself wants the key repeated
    as is: its description of MediaUrl says "provide multiple media_url parameters".
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.original_bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.original_bodies.append(body)
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        counts = Counter(key for key, _ in pairs)
        form = request.headers.get("content-type") == "application/x-www-form-urlencoded"
        if form and (any(n > 1 for n in counts.values()) or "MediaUrl" in counts):
            array = {k for k, n in counts.items() if n > 1 or k == "MediaUrl"}
            rewritten = urlencode([(f"{k}[]" if k in array else k, v) for k, v in pairs])
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            request = httpx.Request(
                request.method, request.url, headers=headers, content=rewritten.encode()
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_media_create_with_validity_is_valid(prism_url: str) -> None:
    message = OutboundMessage(
        "+14155552671", "look", from_number="+15005550006", media_urls=MEDIA, validity_period=600
    )
    transport = PrismArrayForm()
    async with httpx.AsyncClient(transport=transport) as http:
        created = await TwilioClient(http, token_auth(), prism_url).send_message(message)
    assert created.sid.startswith(("SM", "MM"))
    # What left our client is Twilio's form: the key repeated, not the `[]` spelling.
    [body] = transport.original_bodies
    assert parse_qsl(body.decode())[-3:] == [
        ("MediaUrl", MEDIA[0]),
        ("MediaUrl", MEDIA[1]),
        ("ValidityPeriod", "600"),
    ]


@pytest.mark.xfail(
    strict=True,
    raises=TwilioApiError,  # Prism's 422 "MediaUrl must be array"
    reason="Prism 5 reads a repeated urlencoded key as a string (prism#2473)",
)
async def test_repeated_media_url_as_sent_to_twilio(prism_url: str) -> None:
    # Flips to passing once Prism understands repeated keys; then drop PrismArrayForm.
    message = OutboundMessage("+14155552671", "x", from_number="+15005550006", media_urls=MEDIA)
    async with httpx.AsyncClient() as http:
        await TwilioClient(http, token_auth(), prism_url).send_message(message)


async def test_scheduled_create_is_valid(prism_url: str) -> None:
    message = OutboundMessage(
        "+14155552671",
        "later",
        messaging_service_sid=SERVICE_SID,
        send_at=datetime.now(UTC) + timedelta(hours=2),
    )
    async with httpx.AsyncClient() as http:
        created = await TwilioClient(http, key_auth(), prism_url).send_message(message)
    assert created.sid.startswith("SM")


async def test_fetch_is_valid(prism_url: str) -> None:
    async with httpx.AsyncClient() as http:
        message = await TwilioClient(http, token_auth(), prism_url).fetch_message(MESSAGE_SID)
    # Twilio's own fetch example, with every field we model.
    assert message.sid.startswith("SM") and message.account_sid == EXAMPLE_ACCOUNT_SID
    assert (message.direction, message.price, message.price_unit) == (
        "outbound-api",
        "-0.00750",
        "USD",
    )
    assert message.date_sent and message.date_updated and message.uri and message.num_media


async def test_list_with_date_filters_and_cursor_is_valid(prism_url: str) -> None:
    credentials = TwilioCredentials.from_values(
        EXAMPLE_ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None
    )
    async with httpx.AsyncClient() as http:
        client = TwilioClient(http, credentials, prism_url)
        page = await client.list_messages(
            to="+14155552671", date_sent_after=date(2024, 3, 4), page_size=2
        )
        # A bare `DateSent=YYYY-MM-DD` fails Prism's date-time check; ours is date-time.
        same_day = await client.list_messages(date_sent=date(2024, 3, 4), page_size=1000)
        assert page.next_page_uri is not None
        following = await client.list_messages(page_uri=page.next_page_uri)
    assert len(page.messages) == 2 and page.messages[1].sid.startswith("MM")
    assert same_day.messages and following.messages


async def test_a_cursor_for_another_account_is_refused(prism_url: str) -> None:
    async with httpx.AsyncClient() as http:
        client = TwilioClient(http, token_auth(), prism_url)
        page = await client.list_messages(page_size=2)
        # Prism's example cursor belongs to the example account, not ours.
        assert page.next_page_uri and EXAMPLE_ACCOUNT_SID in page.next_page_uri
        with pytest.raises(ValueError, match="page_uri"):
            await client.list_messages(page_uri=page.next_page_uri)


async def test_cancel_redact_and_delete_are_valid(prism_url: str) -> None:
    async with httpx.AsyncClient() as http:
        client = TwilioClient(http, token_auth(), prism_url)
        canceled = await client.cancel_message(MESSAGE_SID)
        redacted = await client.redact_message(MESSAGE_SID)
        deleted = await client.delete_message(MESSAGE_SID)  # Prism answers 204, no body
    # Prism answers every update with the spec's first example (the redaction one).
    assert canceled.sid.startswith("SM") and redacted.body == ""
    assert deleted is None


async def test_raw_request_reaches_prism(prism_url: str) -> None:
    async with httpx.AsyncClient() as http:
        client = TwilioClient(http, token_auth(), prism_url)
        ok = await client.raw_request(
            "GET", f"/Accounts/$TWILIO_ACCOUNT_SID/Messages/{MESSAGE_SID}.json"
        )
        bad = await client.raw_request("GET", "/Accounts/$TWILIO_ACCOUNT_SID/Messages/SM1.json")
    assert ok.status_code == 200 and ok.json()["sid"].startswith("SM")
    assert bad.status_code == 422  # returned as is, not raised
