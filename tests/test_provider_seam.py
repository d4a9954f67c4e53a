"""The provider seam (app/sms/): Twilio implements it, test mode implements it, and the
worker and the webhooks run unchanged over a provider that is neither."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import pytest
import redis
from pydantic import SecretStr

from app.destinations import DestinationSet
from app.metrics import Metrics
from app.pipeline.dispatch import RetryPolicy
from app.services.ingest import IngestService
from app.services.webhooks import WebhookService
from app.services.worker import SendWorker
from app.sms.failures import ErrorAction, ProviderRejected, Unsupported
from app.sms.message import OutboundMessage
from app.sms.mocked import MockedProvider
from app.sms.provider import Provider, ScheduleWindow, SendResult
from app.sms.reports import (
    InboundMessage,
    MessagePage,
    MessageQuery,
    ProviderMessage,
    StatusUpdate,
)
from app.store import keys
from app.store.callbacks import CallbackLog
from app.store.connection import connect
from app.store.deliveries import DeliveryLog
from app.store.pauses import PauseBook
from app.store.queue import SendQueue
from app.store.records import NewDelivery
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.inbound import parse_inbound_message, parse_status_callback
from app.twilio.provider import TwilioProvider
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, REDIS_URL, twilio_http
from tests.fake_twilio import FakeTwilio

TO = "+14155552671"
FROM = "+15005550006"
MESSAGE = OutboundMessage(to=TO, body="Hi", from_number=FROM)


@pytest.fixture
async def twilio_provider(fake_twilio: FakeTwilio) -> AsyncIterator[TwilioProvider]:
    http = twilio_http()
    credentials = TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)
    yield TwilioProvider(TwilioClient(http, credentials, fake_twilio.base_url))
    await http.aclose()


def implements(provider: Provider) -> Provider:
    """mypy checks here that each implementation satisfies the protocol."""
    return provider


# --- Twilio ------------------------------------------------------------------------------


async def test_twilio_sends_fetches_and_lists_in_the_seams_words(
    twilio_provider: TwilioProvider, fake_twilio: FakeTwilio
) -> None:
    provider = implements(twilio_provider)
    sent = await provider.send(MESSAGE)
    assert sent.status == "queued" and sent.id.startswith("SM")
    fetched = await provider.fetch(sent.id)
    assert (fetched.id, fetched.to, fetched.from_number, fetched.body) == (sent.id, TO, FROM, "Hi")
    assert fetched.direction == "api" and fetched.created_ms is not None
    # The pass-through API answers Twilio's own JSON, kept aside.
    assert fetched.raw["sid"] == sent.id and fetched.raw["from"] == FROM
    page = await provider.list(MessageQuery(to=TO, page_size=1))
    assert [m.id for m in page.messages] == [sent.id]


async def test_twilio_state_conflicts_are_the_seams_conflicts(
    twilio_provider: TwilioProvider, fake_twilio: FakeTwilio
) -> None:
    sent = fake_twilio.add_message(status="delivered")
    with pytest.raises(ProviderRejected) as refused:
        await twilio_provider.cancel(sent["sid"])
    assert refused.value.conflict and refused.value.code == 30409
    fake_twilio.enqueue(FakeTwilio.fail_with(400, 21211, "Invalid 'To' Phone Number"))
    with pytest.raises(ProviderRejected) as invalid:
        await twilio_provider.send(MESSAGE)
    assert not invalid.value.conflict
    assert invalid.value.action is ErrorAction.SUPPRESS_RECIPIENT


def test_twilio_status_callbacks_in_the_seams_words() -> None:
    update = parse_status_callback(
        {
            "SmsSid": "SM" + "1" * 32,  # older accounts' names
            "SmsStatus": "Undelivered",
            "ErrorCode": "21610",
            "To": "whatsapp:+14155552671",
            "From": "+15005550006",
        }
    )
    assert (update.message_id, update.status, update.error_code) == (
        "SM" + "1" * 32,
        "undelivered",
        21610,
    )
    assert update.action is ErrorAction.OPT_OUT and update.recipient == TO
    # A status with no neutral counterpart is kept in Twilio's words (it ranks nowhere).
    assert parse_status_callback({"MessageStatus": "partially_delivered"}).status == (
        "partially_delivered"
    )
    assert parse_status_callback({"MessageStatus": "sent"}).action is None


@pytest.mark.parametrize(
    ("form", "consent", "keyword"),
    [
        ({"Body": "  stop "}, "opt_out", "STOP"),
        ({"Body": "start"}, "opt_in", "START"),
        ({"Body": "Arrêt", "OptOutType": "STOP"}, "opt_out", "ARRÊT"),
        ({"Body": "hello", "OptOutType": "START"}, "opt_in", "HELLO"),
        ({"Body": "STOP", "OptOutType": "START"}, "opt_out", "STOP"),  # an opt-out wins
        ({"Body": "hello"}, None, "HELLO"),
        ({"Body": ""}, None, ""),
    ],
)
def test_twilio_inbound_consent(form: dict[str, str], consent: str | None, keyword: str) -> None:
    message = parse_inbound_message({"From": "whatsapp:+14155552671", "To": FROM, **form})
    assert (message.consent, message.keyword, message.sender) == (consent, keyword, TO)


# --- test mode ---------------------------------------------------------------------------


async def test_test_mode_sends_nothing_and_asks_nothing(
    twilio_provider: TwilioProvider, fake_twilio: FakeTwilio
) -> None:
    mocked = implements(MockedProvider(twilio_provider))
    first, second = await mocked.send(MESSAGE), await mocked.send(MESSAGE)
    assert first.status == second.status == "mocked" and first.id != second.id
    assert first.id.startswith("SM") and len(first.id) == 34
    assert not mocked.delivers and mocked.name == "Twilio (test mode)"
    # What it stood for is the live provider's request, credentials redacted.
    preview = mocked.preview(MESSAGE)
    assert preview == twilio_provider.preview(MESSAGE)
    assert preview["auth"] == {"username": ACCOUNT_SID, "password": "[redacted]"}
    for call in (mocked.fetch(first.id), mocked.list(MessageQuery()), mocked.cancel(first.id)):
        with pytest.raises(Unsupported):
            await call
    assert fake_twilio.message_requests == []


# --- a provider that is neither ----------------------------------------------------------


class PigeonPost:
    """A provider of our own, in no one's words but the seam's: what a second provider
    implements. It refuses numbers ending in 0 as opted out, accepts the rest."""

    name = "Pigeon"
    delivers = True
    send_timeout_s = 1.0
    list_delay_s = 0.0
    schedule_window: ScheduleWindow | None = (
        None  # it holds nothing: every later send is ours to hold
    )

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def preview(self, message: OutboundMessage) -> dict[str, object]:
        return {"to": message.to}

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.to.endswith("0"):
            raise ProviderRejected(
                "Pigeon 400: gone",
                http_status=400,
                code=7,
                message="the recipient opted out",
                action=ErrorAction.OPT_OUT,
            )
        self.sent.append(message)
        return SendResult(id=f"pg-{len(self.sent)}", status="accepted")

    async def fetch(self, message_id: str) -> ProviderMessage:
        raise Unsupported("pigeons do not come back")

    async def list(self, query: MessageQuery) -> MessagePage:
        return MessagePage([])

    async def cancel(self, message_id: str) -> ProviderMessage:
        raise Unsupported("pigeons fly at once")

    async def redact(self, message_id: str) -> ProviderMessage:
        raise Unsupported("pigeons forget")

    async def delete(self, message_id: str) -> None:
        raise Unsupported("pigeons forget")

    def parse_status(self, fields: Mapping[str, str]) -> StatusUpdate:
        return StatusUpdate(fields["id"], fields["state"])

    def parse_inbound(self, fields: Mapping[str, str]) -> InboundMessage:
        return InboundMessage(None, fields["from"], "", fields["text"])


def delivery(event: str, recipient: str, mode: str = "live") -> NewDelivery:
    return NewDelivery(
        destination_id="coop",
        mode="test" if mode == "test" else "live",
        event_identity=event,
        event_uuid=event,
        event_name="hatched",
        recipient=recipient,
        body="Coo",
        encoding="GSM-7",
        segments=1,
        from_number=FROM,
    )


async def test_the_worker_sends_through_any_provider(redis_client: redis.Redis) -> None:
    client = connect(REDIS_URL)
    log = DeliveryLog(client, dedupe_ttl_s=3600, retention_s=3600)
    pigeons = PigeonPost()
    worker = SendWorker(
        SendQueue(client, "seam"),
        log,
        implements(pigeons),
        RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=1),
        concurrency=4,
        reclaim_idle_s=60,
        metrics=Metrics(),
        pauses=PauseBook(client),
    )
    running = asyncio.create_task(worker.run())
    try:
        sent, refused, mocked = await log.admit(
            [
                delivery("a", "+14155552671"),
                delivery("b", "+14155552670"),
                delivery("c", "+14155552672", mode="test"),
            ]
        )
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            records = [await log.get(a.delivery_id) for a in (sent, refused, mocked)]
            statuses = [r.status if r else None for r in records]
            if statuses == ["sent", "failed", "mocked"]:
                break
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await running
    ok, failed, test = records
    assert ok is not None and (ok.provider_id, ok.provider_status) == ("pg-1", "accepted")
    assert await log.delivery_id_for("pg-1") == sent.delivery_id
    # The catalog's action, whoever's catalog: an opt-out suppresses the number.
    assert failed is not None and (failed.error_code, failed.error_message) == (
        7,
        "the recipient opted out",
    )
    assert redis_client.hget(keys.SUPPRESSIONS, "+14155552670") is not None
    # Test mode never reached the provider, and its id is not indexed for callbacks.
    assert test is not None and test.provider_status == "mocked"
    assert [m.to for m in pigeons.sent] == ["+14155552671"]
    assert test.provider_id and await log.delivery_id_for(test.provider_id) is None
    # Its status callbacks, parsed by it, move the delivery forward through the same service.
    ingest = IngestService(DestinationSet([]), log, pigeons, "US", False, timedelta(1), Metrics())
    webhooks = WebhookService(pigeons, CallbackLog(client, 3600), log, ingest, "US")
    update = pigeons.parse_status({"id": "pg-1", "state": "delivered"})
    assert (await webhooks.status_callback(update)).outcome == "applied"
    assert (await webhooks.status_callback(update)).outcome == "replayed"
    record = await log.get(sent.delivery_id)
    assert record is not None and (record.status, record.provider_status) == (
        "delivered",
        "delivered",
    )
    assert record.history and "Pigeon status callback: delivered" in record.history
    await client.aclose()


def test_a_datetime_for_the_seam_is_tz_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OutboundMessage(to=TO, body="x", send_at=datetime(2030, 1, 1))
    assert OutboundMessage(to=TO, body="x", send_at=datetime(2030, 1, 1, tzinfo=UTC)).send_at


def test_a_twilio_refusal_carries_its_catalog_words() -> None:
    from app.twilio.errors import TwilioApiError

    known = TwilioApiError(401, 20003, "Authenticate")
    assert (known.action, known.meaning) == (
        ErrorAction.PAUSE_DESTINATION,
        "the Twilio credentials were refused",
    )
    assert (
        isinstance(known, ProviderRejected) and str(known) == "Twilio 401 error 20003: Authenticate"
    )
    unknown = TwilioApiError(503, None, "down", retry_after=2.0)
    assert (unknown.action, unknown.meaning, unknown.retryable) == (ErrorAction.RETRY, None, True)


@pytest.mark.parametrize(
    ("twilio", "neutral"),
    [
        ("outbound-api", "api"),
        ("outbound-reply", "outbound"),
        ("outbound-call", "outbound"),
        ("outbound-something-new", "outbound"),  # still someone's text: reconciliation imports it
        ("inbound", "inbound"),
        (None, None),
    ],
)
def test_twilio_directions_in_the_seams_words(twilio: str | None, neutral: str | None) -> None:
    from app.twilio.inbound import neutral_direction

    assert neutral_direction(twilio) == neutral
