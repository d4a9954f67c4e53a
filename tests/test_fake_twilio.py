"""The fake Twilio server itself: it must answer like Twilio and record what it was sent,
or every test built on it proves nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fake_twilio import FakeTwilio, ScriptedResponse

ACCOUNT = "AC" + "0f" * 16
CREATE = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
SMS = {"To": "+14155552671", "From": "+15005550006", "Body": "Hi 👋"}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def http(fake: FakeTwilio) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, auth=(ACCOUNT, "token"), timeout=5) as client:
        yield client


def test_default_create_answers_201_echoing_the_form(fake: FakeTwilio, http: httpx.Client) -> None:
    response = http.post(CREATE, data=SMS)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    message = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert [message[k] for k in ("to", "from", "body")] == [SMS["To"], SMS["From"], SMS["Body"]]
    assert message["account_sid"] == ACCOUNT
    assert (message["status"], message["direction"], message["num_segments"]) == (
        "queued",
        "outbound-api",
        "1",
    )
    assert message["messaging_service_sid"] is None and message["error_code"] is None
    assert message["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{message['sid']}.json"
    assert message["date_created"].endswith("GMT")  # RFC 2822
    # Every request gets its own SID.
    assert http.post(CREATE, data=SMS).json()["sid"] != message["sid"]
    [request, _] = fake.message_requests
    assert request.form == SMS
    assert request.body.decode().startswith("To=%2B14155552671&")


def test_messaging_service_create_is_accepted_without_a_from(http: httpx.Client) -> None:
    service = "MG" + "d4" * 16
    form = {"To": SMS["To"], "MessagingServiceSid": service, "Body": "x"}
    message = http.post(CREATE, data=form).json()
    assert (message["status"], message["from"], message["messaging_service_sid"]) == (
        "accepted",
        None,
        service,
    )


@pytest.mark.parametrize(
    ("form", "code"),
    [({"From": "+15005550006", "Body": "x"}, 21604), ({"To": "+14155552671"}, 21602)],
)
def test_missing_to_or_body_is_twilios_400(
    http: httpx.Client, form: dict[str, str], code: int
) -> None:
    response = http.post(CREATE, data=form)
    assert response.status_code == 400
    error = response.json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_media_without_body_is_fine(http: httpx.Client) -> None:
    form = {"To": SMS["To"], "From": SMS["From"], "MediaUrl": "https://cdn.example.com/a.png"}
    assert http.post(CREATE, data=form).status_code == 201


def test_unknown_path_is_twilios_404(http: httpx.Client) -> None:
    response = http.post(f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json", data=SMS)
    assert response.status_code == 404
    assert response.json()["code"] == 20404


def test_fetch_returns_a_message_it_created_only(http: httpx.Client) -> None:
    created = http.post(CREATE, data=SMS).json()
    fetched = http.get(created["uri"])
    assert fetched.status_code == 200 and fetched.json() == created

    unknown = http.get(f"/2010-04-01/Accounts/{ACCOUNT}/Messages/SM{'0' * 32}.json")
    assert unknown.status_code == 404 and unknown.json()["code"] == 20404


def test_scripted_500_then_the_default_201(fake: FakeTwilio, http: httpx.Client) -> None:
    fake.enqueue(fake.fail_with(500, 20500, "Internal Server Error"))

    first = http.post(CREATE, data=SMS)
    second = http.post(CREATE, data=SMS)

    assert first.status_code == 500
    assert first.json() == {
        "code": 20500,
        "message": "Internal Server Error",
        "more_info": "https://www.twilio.com/docs/errors/20500",
        "status": 500,
    }
    assert second.status_code == 201
    assert len(fake.message_requests) == 2


def test_429_with_retry_after(fake: FakeTwilio, http: httpx.Client) -> None:
    too_many = fake.fail_with(429, 20429, "Too Many Requests")
    too_many.headers["Retry-After"] = "3"
    fake.enqueue(too_many)

    response = http.post(CREATE, data=SMS)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["code"] == 20429


def test_delay_makes_a_client_time_out(fake: FakeTwilio) -> None:
    fake.enqueue(ScriptedResponse(201, {"sid": "SM1"}, delay=0.5))
    with (
        httpx.Client(base_url=fake.base_url, timeout=0.1) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(CREATE, data=SMS)
    # The request was still received and recorded: a timeout is not proof of no delivery.
    assert len(fake.wait_for_requests(1)) == 1


def test_latency_slows_default_answers(fake: FakeTwilio, http: httpx.Client) -> None:
    fake.latency = 0.2
    started = time.monotonic()
    assert http.post(CREATE, data=SMS).status_code == 201
    assert time.monotonic() - started >= 0.2


def test_drop_closes_without_answering(fake: FakeTwilio, http: httpx.Client) -> None:
    fake.enqueue(ScriptedResponse(201, drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(CREATE, data=SMS)
    assert http.post(CREATE, data=SMS).status_code == 201  # the next one is answered


def test_basic_auth_and_headers_are_recorded(fake: FakeTwilio, http: httpx.Client) -> None:
    http.post(CREATE, data=SMS, headers={"User-Agent": "smsdest-test"})
    with httpx.Client(base_url=fake.base_url) as anonymous:
        anonymous.post(CREATE, data=SMS)

    with_auth, without_auth = fake.requests
    assert with_auth.basic_auth == (ACCOUNT, "token")
    assert with_auth.headers["user-agent"] == "smsdest-test"  # names are lower-cased
    assert with_auth.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (with_auth.method, with_auth.path) == ("POST", CREATE)
    assert with_auth.received_at <= without_auth.received_at
    assert without_auth.basic_auth is None


def test_message_requests_are_only_creates(fake: FakeTwilio, http: httpx.Client) -> None:
    created = http.post(CREATE, data=SMS).json()
    http.get(created["uri"])
    http.post(f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json", data=SMS)

    assert len(fake.requests) == 3
    assert [r.path for r in fake.message_requests] == [CREATE]


def test_wait_for_requests_timeout_says_what_it_saw(fake: FakeTwilio, http: httpx.Client) -> None:
    http.post(CREATE, data=SMS)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="expected 2 Twilio requests, got 1"):
        fake.wait_for_requests(2, timeout=0.2)
    assert time.monotonic() - started < 2
