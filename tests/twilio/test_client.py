"""The Twilio client against the fake Twilio HTTP server."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from app.sms.message import OutboundMessage
from app.transport import AiohttpTransport, _proxy_for
from app.twilio.client import TwilioClient, TwilioCredentials
from app.twilio.errors import (
    MESSAGE_NOT_CANCELABLE_ERROR_CODE,
    MESSAGE_NOT_COMPLETE_ERROR_CODE,
    TwilioApiError,
    TwilioTransportError,
)
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, twilio_http
from tests.fake_twilio import FakeTwilio, ScriptedResponse

API_KEY = "SK" + "b2" * 16
MESSAGE = OutboundMessage(to="+14155552671", body="Hi ✓", from_number="+15005550006")


def token_credentials() -> TwilioCredentials | None:
    return TwilioCredentials.from_values(ACCOUNT_SID, SecretStr(AUTH_TOKEN), None, None)


async def test_send_message_form_and_auth(fake_twilio: FakeTwilio) -> None:
    async with twilio_http() as http:
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
    async with twilio_http() as http:
        await TwilioClient(http, credentials, fake_twilio.base_url).send_message(message)
    [request] = fake_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.basic_auth == (API_KEY, "key-secret")
    assert request.form["MessagingServiceSid"] == "MG" + "0" * 32 and "From" not in request.form


async def test_twilio_error_json_becomes_typed_error(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(fake_twilio.fail_with(400, 21211, "The 'To' number is not valid."))
    async with twilio_http() as http:
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
    async with twilio_http() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == 7.0


async def test_non_json_error_body(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(502))
    async with twilio_http() as http:
        with pytest.raises(TwilioApiError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.code is None and caught.value.retryable


async def test_timeout_after_sending_is_not_retryable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(201, delay=1.0))
    async with twilio_http(timeout=0.2) as http:
        with pytest.raises(TwilioTransportError) as caught:
            await TwilioClient(http, token_credentials(), fake_twilio.base_url).send_message(
                MESSAGE
            )
    assert caught.value.request_sent and not caught.value.retryable


async def test_a_trickling_answer_fails_at_the_deadline(fake_twilio: FakeTwilio) -> None:
    # One byte every 50 ms: no single read waits long, the whole answer would take ~40 s.
    fake_twilio.trickle = 0.05
    async with twilio_http(timeout=httpx.Timeout(1.0, connect=0.5)) as http:
        client = TwilioClient(http, token_credentials(), fake_twilio.base_url)
        started = time.monotonic()
        with pytest.raises(TwilioTransportError) as caught:
            await client.send_message(MESSAGE)
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.4, elapsed
    # It left and Twilio created it: not retryable, the outcome is unknown.
    assert caught.value.request_sent and not caught.value.retryable
    assert len(fake_twilio.messages) == 1


async def test_connection_dropped_after_sending_is_not_retryable(fake_twilio: FakeTwilio) -> None:
    # Twilio may have created the message before the connection broke: no second SMS.
    fake_twilio.enqueue(ScriptedResponse(201, drop=True))
    async with twilio_http() as http:
        client = TwilioClient(http, token_credentials(), fake_twilio.base_url)
        with pytest.raises(TwilioTransportError) as caught:
            await client.send_message(MESSAGE)
        assert caught.value.request_sent and not caught.value.retryable
        assert (await client.send_message(MESSAGE)).sid.startswith("SM")  # pool recovered
    assert len(fake_twilio.requests) == 2


async def test_waiting_for_a_pooled_connection_times_out_unsent(fake_twilio: FakeTwilio) -> None:
    fake_twilio.latency = 1.0
    transport = AiohttpTransport(max_connections=1)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.2)) as http:
        client = TwilioClient(http, token_credentials(), fake_twilio.base_url)
        slow = asyncio.create_task(client.send_message(MESSAGE))
        await asyncio.sleep(0.1)  # the slow request holds the only connection
        with pytest.raises(TwilioTransportError) as caught:
            await client.send_message(MESSAGE)
        assert not caught.value.request_sent and caught.value.retryable
        await slow
    assert len(fake_twilio.requests) == 1


async def test_connection_refused_is_retryable() -> None:
    async with twilio_http() as http:
        with pytest.raises(TwilioTransportError) as caught:
            await TwilioClient(http, token_credentials(), "http://127.0.0.1:9").send_message(
                MESSAGE
            )
    assert not caught.value.request_sent and caught.value.retryable


def test_redacted_request_hides_the_secret() -> None:
    client = TwilioClient(twilio_http(), token_credentials(), "https://api.twilio.com")
    redacted = client.message_request(MESSAGE).redacted()
    assert AUTH_TOKEN not in str(redacted)
    assert redacted["auth"] == {"username": ACCOUNT_SID, "password": "[redacted]"}


# --- create: media, per-message callback, validity, scheduling ------------------------

MEDIA = ("https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg")
SERVICE_SID = "MG" + "d4" * 16


def client_for(
    http: httpx.AsyncClient, fake: FakeTwilio, callback: str | None = None
) -> TwilioClient:
    return TwilioClient(http, token_credentials(), fake.base_url, callback)


async def test_media_urls_go_out_as_one_field_each(fake_twilio: FakeTwilio) -> None:
    message = OutboundMessage(
        to="+14155552671", body="", from_number="+15005550006", media_urls=MEDIA
    )
    async with twilio_http() as http:
        created = await client_for(http, fake_twilio).send_message(message)
    [request] = fake_twilio.requests
    # A media-only MMS has no Body at all; each URL is its own MediaUrl field, in order.
    assert request.body == (
        b"To=%2B14155552671&From=%2B15005550006"
        b"&MediaUrl=https%3A%2F%2Fcdn.example.com%2Fa.png"
        b"&MediaUrl=https%3A%2F%2Fcdn.example.com%2Fb.jpg"
    )
    assert request.form_lists["MediaUrl"] == list(MEDIA)
    assert "Body" not in request.form
    assert created.sid.startswith("MM") and created.num_media == "2"


def test_redacted_form_lists_only_repeated_keys() -> None:
    client = TwilioClient(twilio_http(), token_credentials(), "https://api.twilio.com")
    plain = client.message_request(MESSAGE).redacted()
    assert plain["form"] == {"To": "+14155552671", "Body": "Hi ✓", "From": "+15005550006"}
    one = client.message_request(OutboundMessage("+14155552671", "x", media_urls=MEDIA[:1]))
    two = client.message_request(OutboundMessage("+14155552671", "x", media_urls=MEDIA))
    assert one.redacted()["form"] == {"To": "+14155552671", "Body": "x", "MediaUrl": MEDIA[0]}
    assert two.redacted()["form"] == {"To": "+14155552671", "Body": "x", "MediaUrl": list(MEDIA)}
    assert two.form[-2:] == [("MediaUrl", MEDIA[0]), ("MediaUrl", MEDIA[1])]


async def test_per_message_callback_and_validity_period(fake_twilio: FakeTwilio) -> None:
    message = OutboundMessage(
        to="+14155552671",
        body="x",
        from_number="+15005550006",
        status_callback="https://other.example.com/cb",
        validity_period=600,
    )
    async with twilio_http() as http:
        await client_for(http, fake_twilio, "https://sms.example.com/cb").send_message(message)
    [request] = fake_twilio.requests
    assert request.form["StatusCallback"] == "https://other.example.com/cb"
    assert request.form["ValidityPeriod"] == "600"
    assert "ScheduleType" not in request.form and "SendAt" not in request.form


async def test_scheduled_send_carries_schedule_type_and_utc_send_at(
    fake_twilio: FakeTwilio,
) -> None:
    # Given in UTC+02:00 with microseconds: on the wire it is whole seconds, UTC, with a Z.
    local = timezone(timedelta(hours=2))
    send_at = (datetime.now(UTC) + timedelta(hours=1)).astimezone(local)
    message = OutboundMessage(
        to="+14155552671", body="later", messaging_service_sid=SERVICE_SID, send_at=send_at
    )
    async with twilio_http() as http:
        created = await client_for(http, fake_twilio).send_message(message)
    [request] = fake_twilio.requests
    assert request.form["ScheduleType"] == "fixed"
    assert request.form["SendAt"] == send_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", request.form["SendAt"])
    assert created.status == "scheduled"


async def test_scheduling_without_a_service_is_twilios_35118(fake_twilio: FakeTwilio) -> None:
    # The client leaves this rule to its caller; the fake answers like Twilio.
    send_at = datetime.now(UTC) + timedelta(hours=1)
    message = OutboundMessage("+14155552671", "x", from_number="+15005550006", send_at=send_at)
    async with twilio_http() as http:
        with pytest.raises(TwilioApiError) as caught:
            await client_for(http, fake_twilio).send_message(message)
    assert caught.value.code == 35118


def test_outbound_message_refuses_naive_send_at_and_bad_validity() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OutboundMessage("+14155552671", "x", send_at=datetime(2030, 1, 1, 12))
    with pytest.raises(ValueError, match="validity_period"):
        OutboundMessage("+14155552671", "x", validity_period=0)


# --- fetch / list ---------------------------------------------------------------------


async def test_fetch_message_parses_the_resource(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message(
        body="hello", status="delivered", price="-0.00790", direction="outbound-api"
    )
    async with twilio_http() as http:
        message = await client_for(http, fake_twilio).fetch_message(seeded["sid"])
    [request] = fake_twilio.requests
    assert (request.method, request.path) == (
        "GET",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{seeded['sid']}.json",
    )
    assert request.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert message.sid == seeded["sid"] and message.body == "hello"
    assert (message.account_sid, message.direction) == (ACCOUNT_SID, "outbound-api")
    assert (message.price, message.price_unit, message.num_media) == ("-0.00790", "USD", "0")
    assert message.date_sent == seeded["date_sent"] and message.uri == seeded["uri"]
    assert message.date_updated


async def test_fetch_unknown_message_is_twilios_404(fake_twilio: FakeTwilio) -> None:
    async with twilio_http() as http:
        with pytest.raises(TwilioApiError) as caught:
            await client_for(http, fake_twilio).fetch_message("SM" + "0" * 32)
    assert (caught.value.http_status, caught.value.code) == (404, 20404)


BAD_SIDS = [
    "SM123",
    "SM" + "g" * 32,
    "AC" + "a" * 32,
    "SM" + "a" * 32 + "\n",
    "../../Calls",
    "SM" + "a" * 31 + "/",
    "",
]


@pytest.mark.parametrize("sid", BAD_SIDS)
async def test_malformed_sids_never_reach_the_url(fake_twilio: FakeTwilio, sid: str) -> None:
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        with pytest.raises(ValueError):
            await client.fetch_message(sid)
        with pytest.raises(ValueError):
            await client.redact_message(sid)
        with pytest.raises(ValueError):
            await client.delete_message(sid)
    assert fake_twilio.requests == []


async def test_list_messages_filters_on_the_wire(fake_twilio: FakeTwilio) -> None:
    day = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    older = fake_twilio.add_message(to="+14155552671", date_sent=day - timedelta(days=2))
    newer = fake_twilio.add_message(to="+14155552671", date_sent=day)
    fake_twilio.add_message(to="+14155550000", date_sent=day)
    fake_twilio.add_message(to="+14155552671", date_sent=None, status="queued")
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        page = await client.list_messages(
            to="+14155552671", date_sent_after=date(2024, 3, 4), page_size=20
        )
        both = await client.list_messages(
            to="+14155552671",
            from_="+15005550006",
            # 01:30 on the 6th in UTC+03:00 is the 5th, 22:30 UTC
            date_sent_before=datetime(2024, 3, 6, 1, 30, tzinfo=timezone(timedelta(hours=3))),
            date_sent=date(2024, 3, 5),
        )
    assert [m.sid for m in page.messages] == [newer["sid"]] and page.next_page_uri is None
    assert [m.sid for m in both.messages] == [newer["sid"]]
    first, second = fake_twilio.requests
    assert first.query == {
        "To": ["+14155552671"],
        "DateSent>": ["2024-03-04T00:00:00Z"],
        "PageSize": ["20"],
    }
    assert "DateSent%3E=2024-03-04T00%3A00%3A00Z" in first.path  # `>` is percent-encoded
    assert second.query == {
        "To": ["+14155552671"],
        "From": ["+15005550006"],
        "DateSent": ["2024-03-05T00:00:00Z"],
        "DateSent<": ["2024-03-05T22:30:00Z"],
        "PageSize": ["50"],
    }
    assert older["sid"] not in {m.sid for m in page.messages}


async def test_list_messages_follows_next_page_uri(fake_twilio: FakeTwilio) -> None:
    seeded = [fake_twilio.add_message(body=f"m{i}") for i in range(5)]
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        page = await client.list_messages(to="+14155552671", page_size=2)
        sids = [m.sid for m in page.messages]
        cursors = []
        while page.next_page_uri:
            cursors.append(page.next_page_uri)
            # the filters are ignored when a cursor is given: it already carries them
            page = await client.list_messages(to="+14155550000", page_uri=page.next_page_uri)
            sids += [m.sid for m in page.messages]
    assert sids == [m["sid"] for m in reversed(seeded)]  # newest first, each exactly once
    assert len(cursors) == 2
    assert [r.path for r in fake_twilio.requests[1:]] == cursors
    assert all(c.startswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?") for c in cursors)


@pytest.mark.parametrize("size", [0, 1001, -5])
async def test_page_size_out_of_range(fake_twilio: FakeTwilio, size: int) -> None:
    async with twilio_http() as http:
        with pytest.raises(ValueError, match="page_size"):
            await client_for(http, fake_twilio).list_messages(page_size=size)
    assert fake_twilio.requests == []


MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.mark.parametrize(
    "page_uri",
    [
        f"https://evil.example.com{MESSAGES_PATH}?Page=1",
        f"//evil.example.com{MESSAGES_PATH}?Page=1",
        f"/2010-04-01/Accounts/AC{'b' * 32}/Messages.json?Page=1",  # another account
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json?Page=1",
        f"{MESSAGES_PATH}/../../Calls.json?Page=1",
        f"{MESSAGES_PATH}%2F..%2FCalls.json?Page=1",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'a' * 32}.json",
        f"{MESSAGES_PATH}#x",
        "Messages.json?Page=1",
        f" {MESSAGES_PATH}?Page=1",
    ],
)
async def test_page_uri_must_be_this_accounts_message_list(
    fake_twilio: FakeTwilio, page_uri: str
) -> None:
    async with twilio_http() as http:
        with pytest.raises(ValueError, match="page_uri"):
            await client_for(http, fake_twilio).list_messages(page_uri=page_uri)
    assert fake_twilio.requests == []


# --- update / delete ------------------------------------------------------------------


async def test_redact_sends_an_empty_body(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message(body="secret code 1234")
    async with twilio_http() as http:
        message = await client_for(http, fake_twilio).redact_message(seeded["sid"])
    [request] = fake_twilio.requests
    assert request.method == "POST" and request.path.endswith(f"/Messages/{seeded['sid']}.json")
    assert request.body == b"Body=" and request.form_lists == {"Body": [""]}
    assert message.body == "" and fake_twilio.messages[seeded["sid"]]["body"] == ""


async def test_cancel_scheduled_message(fake_twilio: FakeTwilio) -> None:
    send_at = datetime.now(UTC) + timedelta(days=1)
    scheduled = OutboundMessage(
        "+14155552671", "x", messaging_service_sid=SERVICE_SID, send_at=send_at
    )
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        created = await client.send_message(scheduled)
        canceled = await client.cancel_message(created.sid)
        # once canceled it is final: canceling again is Twilio's 30409, not retryable
        with pytest.raises(TwilioApiError) as caught:
            await client.cancel_message(created.sid)
    assert (created.status, canceled.status) == ("scheduled", "canceled")
    assert fake_twilio.requests[1].form_lists == {"Status": ["canceled"]}
    error = caught.value
    assert (error.http_status, error.code, error.retryable) == (
        400,
        MESSAGE_NOT_CANCELABLE_ERROR_CODE,
        False,
    )


async def test_update_with_body_and_status_sends_both(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message(status="scheduled", date_sent=None)
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        message = await client.update_message(seeded["sid"], body="", status="canceled")
        with pytest.raises(ValueError, match="nothing to update"):
            await client.update_message(seeded["sid"])
    assert fake_twilio.requests[0].body == b"Body=&Status=canceled"
    assert (message.body, message.status) == ("", "canceled")


async def test_delete_message(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message(status="delivered")
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        assert await client.delete_message(seeded["sid"]) is None
        with pytest.raises(TwilioApiError) as caught:
            await client.fetch_message(seeded["sid"])
    assert fake_twilio.requests[0].method == "DELETE"
    assert caught.value.http_status == 404 and seeded["sid"] not in fake_twilio.messages


async def test_delete_incomplete_message_is_error_20009(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message(status="sending")
    async with twilio_http() as http:
        with pytest.raises(TwilioApiError) as caught:
            await client_for(http, fake_twilio).delete_message(seeded["sid"])
    assert caught.value.code == MESSAGE_NOT_COMPLETE_ERROR_CODE
    assert (caught.value.http_status, caught.value.retryable) == (409, False)
    assert seeded["sid"] in fake_twilio.messages


# --- failures on the new operations ---------------------------------------------------


async def test_get_and_delete_errors_map_like_create(fake_twilio: FakeTwilio) -> None:
    sid = fake_twilio.add_message()["sid"]
    fake_twilio.enqueue(
        ScriptedResponse(503, {"code": 20503, "message": "busy"}, headers={"Retry-After": "3"}),
        ScriptedResponse(200, {"not": "a message"}),
        ScriptedResponse(204, delay=1.0),
    )
    async with twilio_http(timeout=0.3) as http:
        client = client_for(http, fake_twilio)
        with pytest.raises(TwilioApiError) as api_error:
            await client.list_messages()
        with pytest.raises(TwilioTransportError) as unreadable:
            await client.fetch_message(sid)
        with pytest.raises(TwilioTransportError) as timed_out:
            await client.delete_message(sid)
    assert api_error.value.retryable and api_error.value.retry_after == 3.0
    assert "unreadable" in unreadable.value.message and unreadable.value.request_sent
    assert timed_out.value.request_sent and not timed_out.value.retryable


async def test_new_operations_classify_unsent_requests() -> None:
    async with twilio_http() as http:
        refused = TwilioClient(http, token_credentials(), "http://127.0.0.1:9")
        with pytest.raises(TwilioTransportError) as caught:
            await refused.fetch_message("SM" + "a" * 32)
        assert not caught.value.request_sent and caught.value.retryable
        unconfigured = TwilioClient(http, None, "http://127.0.0.1:9")
        with pytest.raises(TwilioTransportError, match="no Twilio credentials"):
            await unconfigured.fetch_message("SM" + "a" * 32)
        with pytest.raises(TwilioTransportError, match="no Twilio credentials"):
            await unconfigured.list_messages()
        with pytest.raises(TwilioTransportError, match="no Twilio credentials"):
            await unconfigured.raw_request("GET", "/Accounts.json")


# --- raw ------------------------------------------------------------------------------


async def test_raw_request_expands_the_account_sid(fake_twilio: FakeTwilio) -> None:
    seeded = fake_twilio.add_message()
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        fetched = await client.raw_request(
            "get", f"/Accounts/$TWILIO_ACCOUNT_SID/Messages/{seeded['sid']}.json"
        )
        listed = await client.raw_request(
            "GET", "/Accounts/{AccountSid}/Messages.json", params={"PageSize": "1"}
        )
        as_given = await client.raw_request("GET", seeded["uri"])  # Twilio's own `uri`
        posted = await client.raw_request(
            "POST", "/Accounts/${TWILIO_ACCOUNT_SID}/Messages.json", form={"To": "+14155552671"}
        )
        missing = await client.raw_request("GET", "/Accounts/$TWILIO_ACCOUNT_SID/Nope.json")
    paths = [r.path for r in fake_twilio.requests]
    assert paths[0] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{seeded['sid']}.json"
    assert paths[1] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=1"
    assert paths[2] == paths[0]
    assert all(r.basic_auth == (ACCOUNT_SID, AUTH_TOKEN) for r in fake_twilio.requests)
    assert fetched.status_code == 200 and fetched.json()["sid"] == seeded["sid"]
    assert listed.json()["page_size"] == 1 and as_given.status_code == 200
    # Twilio's refusals come back as responses, not exceptions.
    assert (posted.status_code, posted.json()["code"]) == (400, 21602)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example.com/2010-04-01/Accounts.json",
        "//evil.example.com/Accounts.json",
        "Accounts.json",
        "",
    ],
)
async def test_raw_request_refuses_anything_but_a_path(fake_twilio: FakeTwilio, path: str) -> None:
    async with twilio_http() as http:
        with pytest.raises(ValueError):
            await client_for(http, fake_twilio).raw_request("GET", path)
    assert fake_twilio.requests == []


async def test_transport_goes_through_the_proxy_from_the_environment(
    fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake Twilio stands in for the proxy: it receives the absolute-form request line.
    monkeypatch.setenv("HTTP_PROXY", fake_twilio.base_url)
    monkeypatch.setenv("NO_PROXY", "bypassed.invalid")
    _proxy_for.cache_clear()
    try:
        assert _proxy_for("http", "bypassed.invalid") is None
        async with twilio_http() as http:
            await http.post("http://api.twilio.invalid/2010-04-01/x", content=b"a=1")
    finally:
        _proxy_for.cache_clear()
    [request] = fake_twilio.requests
    assert request.path.startswith("http://api.twilio.invalid/2010-04-01/x")


def test_aiohttp_loads_with_the_first_twilio_call_not_at_start(fake_twilio: FakeTwilio) -> None:
    # An ingest-only process never calls Twilio; it should not carry aiohttp (~9 MB).
    script = f"""
import asyncio, sys
import app.cli, app.main
from app.services import build_http_client
from app.settings import Settings
assert "aiohttp" not in sys.modules, "imported at start"
async def main():
    http = build_http_client(Settings(_env_file=None))
    assert "aiohttp" not in sys.modules, "imported by the client"
    response = await http.get({fake_twilio.base_url + "/anything"!r})
    await http.aclose()
    assert "aiohttp" in sys.modules
    print(response.status_code)
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "404"
    assert [request.path for request in fake_twilio.requests] == ["/anything"]


# --- the account's message list, as the resolver of unknown outcomes will read it ---------


async def test_a_created_message_is_listed_by_to_from_and_day_after_the_listing_delay(
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.send_after = 0.0
    fake_twilio.list_delay = 0.3
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        created = await client.send_message(MESSAGE)
        today = datetime.now(UTC).date()
        query = {"to": MESSAGE.to, "from_": MESSAGE.from_number, "date_sent": today}
        assert (await client.list_messages(**query)).messages == []  # not listed yet
        await asyncio.sleep(0.35)
        [listed] = (await client.list_messages(**query)).messages
        # Around the day of the attempt: the day before and after bound it too.
        around = await client.list_messages(
            to=MESSAGE.to,
            date_sent_after=today - timedelta(days=1),
            date_sent_before=today + timedelta(days=1),
        )
        elsewhere = await client.list_messages(to="+14155550000", date_sent=today)
    assert listed.sid == created.sid and listed.body == MESSAGE.body
    assert listed.status == "sent" and listed.date_sent is not None
    assert [m.sid for m in around.messages] == [created.sid]
    assert elsewhere.messages == []


async def test_a_messaging_service_message_is_listed_by_the_number_it_went_from(
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.send_after = 0.0
    service = OutboundMessage(
        to="+14155552671", body="via service", messaging_service_sid="MG" + "c3" * 16
    )
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        created = await client.send_message(service)
        assert created.from_ is None  # Twilio picks the number when it sends
        page = await client.list_messages(to=service.to, from_=fake_twilio.service_sender)
    assert [m.sid for m in page.messages] == [created.sid]


async def test_paging_stays_exact_while_messages_are_created(fake_twilio: FakeTwilio) -> None:
    fake_twilio.send_after = 0.0
    async with twilio_http() as http:
        client = client_for(http, fake_twilio)
        sent = [(await client.send_message(MESSAGE)).sid for _ in range(5)]
        page = await client.list_messages(to=MESSAGE.to, page_size=2)
        seen = [m.sid for m in page.messages]
        for _ in range(2):  # newer messages arrive between pages
            await client.send_message(MESSAGE)
        while page.next_page_uri:
            page = await client.list_messages(page_uri=page.next_page_uri)
            seen += [m.sid for m in page.messages]
    assert seen == list(reversed(sent))  # newest first, each once, none of the later ones
