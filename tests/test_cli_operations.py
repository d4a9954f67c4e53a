"""Operator operations as `smsdest` commands, run as real subprocesses against Redis and
the fake Twilio server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from app.store import keys
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, REDIS_URL, REPO
from tests.fake_twilio import FakeTwilio, ScriptedResponse
from tests.test_cli import cli_env

SID = "SM" + "0" * 31 + "1"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def smsdest(redis_client: redis.Redis, fake_twilio: FakeTwilio, tmp_path: Path) -> Run:
    """Run `smsdest ARGS…` with Redis (a flushed test database) and the fake Twilio."""
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text("destinations: []\n")
    base_env = cli_env(
        SMS_REDIS_URL=REDIS_URL,
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
        SMS_DESTINATIONS_FILE=str(destinations),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=REPO,
            env=env if env is not None else base_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert AUTH_TOKEN not in result.stdout + result.stderr
        return result

    return run


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def last_json_line(stderr: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stderr.strip().splitlines()[-1])
    return result


# --- messages send / cancel ----------------------------------------------------------------


def test_send_queues_a_delivery(smsdest: Run, redis_client: redis.Redis) -> None:
    result = smsdest(
        "messages", "send", "--to", "+14155552671", "--body", "Hi", "--from", "+15005550006"
    )
    assert result.returncode == 0, result.stderr
    [answer] = lines(result.stdout)
    assert answer["decision"] == "queued"
    record = redis_client.hgetall(keys.delivery(answer["delivery_id"]))
    assert record["status"] == "queued"
    assert record["recipient"] == "+14155552671"
    assert record["body"] == "Hi"
    queued = [fields["delivery"] for _, fields in redis_client.xrange(keys.SEND_STREAM)]
    assert queued == [answer["delivery_id"]]


def test_send_with_the_same_idempotency_key_is_one_delivery(smsdest: Run) -> None:
    args = ("messages", "send", "--to", "+14155552671", "--body", "Hi", "--from", "+15005550006")
    first = lines(smsdest(*args, "--idempotency-key", "k-1").stdout)[0]
    second = lines(smsdest(*args, "--idempotency-key", "k-1").stdout)[0]
    assert {k: second[k] for k in ("delivery_id", "decision")} == {
        "delivery_id": first["delivery_id"],
        "decision": "duplicate",
    }
    assert first["delivery_id"] in second["detail"]


def test_send_refuses_an_invalid_message_naming_the_option(
    smsdest: Run, redis_client: redis.Redis
) -> None:
    result = smsdest(
        "messages", "send", "--to", "+1555", "--media-url", "ftp://x", "--from", "+15005550006"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("smsdest: invalid message:")
    assert "--to: +1••• is not a valid phone number" in result.stderr
    assert "--media-url: 'ftp://x' is not an http(s) URL" in result.stderr
    assert redis_client.xlen(keys.SEND_STREAM) == 0


def test_send_needs_one_sender(smsdest: Run) -> None:
    result = smsdest("messages", "send", "--to", "+14155552671", "--body", "Hi")
    assert result.returncode == 2
    assert "one of the arguments --from --messaging-service-sid is required" in result.stderr


def test_send_needs_a_redis_url(smsdest: Run, tmp_path: Path) -> None:
    result = smsdest(
        "messages",
        "send",
        "--to",
        "+14155552671",
        "--body",
        "Hi",
        "--from",
        "+15005550006",
        env=cli_env(SMS_DATA_DIR=str(tmp_path / "data")),
    )
    assert result.returncode == 2
    assert "smsdest messages send needs SMS_REDIS_URL" in result.stderr
    assert not (tmp_path / "data").exists()  # no embedded Redis was started


def test_cancel_a_locally_scheduled_message(smsdest: Run, redis_client: redis.Redis) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sent = smsdest(
        "messages",
        "send",
        "--to",
        "+14155552671",
        "--body",
        "Later",
        "--from",
        "+15005550006",
        "--send-at",
        send_at,
    )
    assert sent.returncode == 0, sent.stderr
    [answer] = lines(sent.stdout)
    assert answer["decision"] == "scheduled"
    delivery_id = answer["delivery_id"]

    result = smsdest("messages", "cancel", delivery_id)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [{"delivery_id": delivery_id, "status": "canceled"}]
    assert redis_client.hget(keys.delivery(delivery_id), "status") == "canceled"
    assert redis_client.zscore(keys.DELAYED_SENDS, delivery_id) is None

    again = smsdest("messages", "cancel", delivery_id)
    assert again.returncode == 2
    assert f"delivery {delivery_id} is canceled" in again.stderr


def test_send_at_in_the_past_is_refused(smsdest: Run) -> None:
    result = smsdest(
        "messages",
        "send",
        "--to",
        "+14155552671",
        "--body",
        "x",
        "--from",
        "+15005550006",
        "--send-at",
        "2020-01-01T00:00:00Z",
    )
    assert result.returncode == 2
    assert "send_at: is in the past" in result.stderr


# --- messages get / list / redact / delete ---------------------------------------------------


def test_get_a_message(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID, body="hello")
    result = smsdest("messages", "get", SID)
    assert result.returncode == 0, result.stderr
    [message] = lines(result.stdout)
    assert message["sid"] == SID
    assert message["body"] == "hello"
    assert message["from"] == "+15005550006"


def test_get_needs_no_redis(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID)
    env = cli_env(
        SMS_TWILIO_BASE_URL=fake_twilio.base_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    result = smsdest("messages", "get", SID, env=env)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0]["sid"] == SID


def test_get_bad_sid_and_unknown_sid(smsdest: Run) -> None:
    bad = smsdest("messages", "get", "nope")
    assert bad.returncode == 2
    assert "sid: must be SM… or MM…" in bad.stderr
    unknown = smsdest("messages", "get", SID)
    assert unknown.returncode == 1
    assert "Twilio error 20404 (HTTP 404)" in unknown.stderr
    assert "more info: https://www.twilio.com/docs/errors/20404" in unknown.stderr


def test_get_needs_twilio_credentials(smsdest: Run) -> None:
    result = smsdest("messages", "get", SID, env=cli_env())
    assert result.returncode == 2
    assert "smsdest messages get needs Twilio credentials" in result.stderr


def _seed(fake_twilio: FakeTwilio, count: int) -> list[str]:
    """Seed `count` messages; answer their SIDs newest first (Twilio's list order)."""
    return [fake_twilio.add_message(body=f"m{i}")["sid"] for i in range(count)][::-1]


def _list_requests(fake_twilio: FakeTwilio) -> list[Any]:
    return [r for r in fake_twilio.requests if r.method == "GET" and "Messages.json" in r.path]


def test_list_one_page_then_the_next(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    sids = _seed(fake_twilio, 5)
    first = smsdest("messages", "list", "--page-size", "2")
    assert first.returncode == 0, first.stderr
    assert [m["sid"] for m in lines(first.stdout)] == sids[:2]
    cursor = last_json_line(first.stderr)["next_cursor"]
    assert cursor.startswith(MESSAGES_PATH)

    second = smsdest("messages", "list", "--cursor", cursor)
    assert [m["sid"] for m in lines(second.stdout)] == sids[2:4]
    third = smsdest("messages", "list", "--cursor", last_json_line(second.stderr)["next_cursor"])
    assert [m["sid"] for m in lines(third.stdout)] == sids[4:]
    assert last_json_line(third.stderr) == {"next_cursor": None}


def test_list_filters(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(to="+14155552671", date_sent=datetime(2026, 1, 2, 10, tzinfo=UTC))
    wanted = fake_twilio.add_message(
        to="+14155550100", date_sent=datetime(2026, 1, 2, 11, tzinfo=UTC)
    )
    fake_twilio.add_message(to="+14155550100", date_sent=datetime(2026, 1, 5, tzinfo=UTC))
    result = smsdest(
        "messages", "list", "--to", "＋１ ４１５ ５５５ ０１００", "--date-sent", "2026-01-02"
    )
    assert result.returncode == 0, result.stderr
    assert [m["sid"] for m in lines(result.stdout)] == [wanted["sid"]]
    [request] = _list_requests(fake_twilio)
    assert request.query["To"] == ["+14155550100"]
    assert request.query["DateSent"] == ["2026-01-02T00:00:00Z"]


def test_list_all_walks_every_page(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    sids = _seed(fake_twilio, 5)
    result = smsdest("messages", "list", "--page-size", "2", "--all")
    assert result.returncode == 0, result.stderr
    assert [m["sid"] for m in lines(result.stdout)] == sids
    assert len(_list_requests(fake_twilio)) == 3
    assert result.stderr == ""


def test_list_all_stops_at_max_pages(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    sids = _seed(fake_twilio, 5)
    result = smsdest("messages", "list", "--page-size", "2", "--all", "--max-pages", "2")
    assert result.returncode == 0, result.stderr
    assert [m["sid"] for m in lines(result.stdout)] == sids[:4]
    assert len(_list_requests(fake_twilio)) == 2
    assert "stopped after 2 pages (--max-pages)" in result.stderr
    assert last_json_line(result.stderr)["next_cursor"].startswith(MESSAGES_PATH)


def test_list_refuses_bad_options(smsdest: Run) -> None:
    too_big = smsdest("messages", "list", "--page-size", "1001")
    assert too_big.returncode == 2
    assert "must be between 1 and 1000" in too_big.stderr
    alone = smsdest("messages", "list", "--max-pages", "3")
    assert alone.returncode == 2
    assert "--max-pages only applies with --all" in alone.stderr
    foreign = smsdest("messages", "list", "--cursor", "/2010-04-01/Accounts/ACother/Calls.json")
    assert foreign.returncode == 2
    assert "cursor: page_uri is not a page of this account's messages" in foreign.stderr


def test_redact(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID, body="secret code 1234")
    result = smsdest("messages", "redact", SID)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0]["body"] == ""
    assert fake_twilio.messages[SID]["body"] == ""


def test_delete(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID)
    result = smsdest("messages", "delete", SID)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [{"sid": SID, "deleted": True}]
    assert SID not in fake_twilio.messages


def test_delete_before_complete_is_a_clear_conflict(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID, status="sending")
    result = smsdest("messages", "delete", SID)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"Twilio will not delete {SID} before it is complete (error 20009)" in result.stderr
    assert SID in fake_twilio.messages


# --- suppressions ---------------------------------------------------------------------------


def test_suppressions_add_get_list_remove(smsdest: Run, redis_client: redis.Redis) -> None:
    added = smsdest("suppressions", "add", "(415) 555-2671")  # national, SMS_DEFAULT_REGION=US
    assert added.returncode == 0, added.stderr
    [record] = lines(added.stdout)
    assert record["number"] == "+14155552671"
    assert record["source"] == "cli"
    assert record["added"] is True
    assert redis_client.hexists(keys.SUPPRESSIONS, "+14155552671")
    assert lines(smsdest("suppressions", "add", "+14155552671").stdout)[0]["added"] is False
    smsdest("suppressions", "add", "+14155550100")

    got = smsdest("suppressions", "get", "+1 415 555 2671")
    assert got.returncode == 0, got.stderr
    assert lines(got.stdout)[0]["number"] == "+14155552671"

    listed = smsdest("suppressions", "list")
    assert sorted(s["number"] for s in lines(listed.stdout)) == ["+14155550100", "+14155552671"]

    removed = smsdest("suppressions", "remove", "+14155552671")
    assert lines(removed.stdout) == [{"number": "+14155552671", "removed": True}]
    gone = smsdest("suppressions", "get", "+14155552671")
    assert gone.returncode == 2
    assert "is not suppressed" in gone.stderr
    assert smsdest("suppressions", "remove", "+14155552671").returncode == 2


def test_suppressions_refuse_a_bad_number(smsdest: Run) -> None:
    result = smsdest("suppressions", "add", "12")
    assert result.returncode == 2
    assert result.stderr.startswith("smsdest: ")
    assert "not a valid phone number" in result.stderr or "not a phone number" in result.stderr


# --- twilio raw -----------------------------------------------------------------------------


def test_raw_get_expands_the_account_sid(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID, to="+14155552671")
    result = smsdest(
        "twilio",
        "raw",
        "GET",
        "/Accounts/$TWILIO_ACCOUNT_SID/Messages.json",  # as if quoted in the shell
        "--query",
        "PageSize=1",
        "--query",
        "To=+14155552671",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "HTTP 200"
    assert json.loads(result.stdout)["messages"][0]["sid"] == SID
    assert "\n  " in result.stdout  # pretty-printed
    [request] = fake_twilio.requests
    assert request.path.startswith(MESSAGES_PATH + "?")
    assert request.query == {"PageSize": ["1"], "To": ["+14155552671"]}
    assert request.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)


def test_raw_accepts_a_path_the_shell_expanded(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID)
    result = smsdest("twilio", "raw", "get", f"/Accounts/{ACCOUNT_SID}/Messages/{SID}.json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sid"] == SID
    assert fake_twilio.requests[0].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}.json"


def test_raw_explains_an_empty_account_sid(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    result = smsdest("twilio", "raw", "GET", "/Accounts//Messages.json")  # unset in the shell
    assert result.returncode == 2
    assert "quote it" in result.stderr
    assert fake_twilio.requests == []


def test_raw_refuses_an_absolute_url(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    result = smsdest("twilio", "raw", "GET", "https://evil.example/steal")
    assert result.returncode == 2
    assert "not a path under /2010-04-01" in result.stderr
    assert fake_twilio.requests == []


def test_raw_post_form_with_repeated_keys(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    result = smsdest(
        "twilio",
        "raw",
        "POST",
        "/Accounts/{AccountSid}/Messages.json",
        "--form",
        "To=+14155552671",
        "--form",
        "From=+15005550006",
        "--form",
        "MediaUrl=https://example.com/a.png",
        "--form",
        "MediaUrl=https://example.com/b.png",
        "--header",
        "X-Trace: abc",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "HTTP 201"
    created = json.loads(result.stdout)
    assert created["num_media"] == "2"
    [request] = fake_twilio.requests
    assert request.path == MESSAGES_PATH
    assert request.form_lists["MediaUrl"] == [
        "https://example.com/a.png",
        "https://example.com/b.png",
    ]
    assert request.headers["x-trace"] == "abc"


def test_raw_error_answer_exits_1_with_the_body(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    result = smsdest("twilio", "raw", "GET", f"/Accounts/{ACCOUNT_SID}/Messages/{SID}.json")
    assert result.returncode == 1
    assert result.stderr.strip() == "HTTP 404"
    assert json.loads(result.stdout)["code"] == 20404


def test_raw_text_and_bytes(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_message(sid=SID)
    path = f"/Accounts/{ACCOUNT_SID}/Messages/{SID}.json"
    text = smsdest("twilio", "raw", "GET", path, "--response-type", "text")
    assert json.loads(text.stdout)["sid"] == SID
    assert "\n  " not in text.stdout.strip()  # as Twilio sent it
    raw = subprocess.run(
        [sys.executable, "-m", "app.cli", "twilio", "raw", "GET", path, "--response-type", "bytes"],
        cwd=REPO,
        env=cli_env(
            SMS_TWILIO_BASE_URL=fake_twilio.base_url,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        ),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert raw.returncode == 0
    assert json.loads(raw.stdout)["sid"] == SID


def test_raw_multipart_file(smsdest: Run, fake_twilio: FakeTwilio, tmp_path: Path) -> None:
    upload = tmp_path / "note.txt"
    upload.write_bytes(b"file contents")
    result = smsdest(
        "twilio",
        "raw",
        "POST",
        "/Accounts/$TWILIO_ACCOUNT_SID/Anything.json",
        "--form",
        "Name=x",
        "--file",
        f"Doc=@{upload}",
    )
    assert result.returncode == 1  # the fake answers 404; the request is what matters
    [request] = fake_twilio.requests
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="Doc"; filename="note.txt"' in request.body
    assert b"file contents" in request.body
    assert b'name="Name"' in request.body


def test_raw_needs_no_redis_but_twilio_credentials(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    result = smsdest("twilio", "raw", "GET", "/Accounts.json", env=cli_env())
    assert result.returncode == 2
    assert "smsdest twilio raw needs Twilio credentials" in result.stderr


_CREATE = ("twilio", "raw", "POST", "/Accounts/$TWILIO_ACCOUNT_SID/Messages.json")
_CREATE_FORM = ("--form", "To=+14155552671", "--form", "Body=hi", "--form", "From=+15005550006")


def test_raw_retries_5xx_then_succeeds(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(503), ScriptedResponse(503))
    result = smsdest(*_CREATE, *_CREATE_FORM, "--max-retries", "2", "--retry-delay", "0.01")
    assert result.returncode == 0, result.stderr
    assert len(fake_twilio.requests) == 3
    assert "HTTP 503; retry 1/2" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "HTTP 201"
    assert json.loads(result.stdout)["status"] == "queued"


def test_raw_does_not_retry_by_default(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(503))
    result = smsdest(*_CREATE, *_CREATE_FORM)
    assert result.returncode == 1
    assert len(fake_twilio.requests) == 1
    assert result.stderr.strip() == "HTTP 503"


def test_raw_retries_stop_at_max_retries(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(*[ScriptedResponse(500)] * 3)
    result = smsdest(
        *_CREATE,
        *_CREATE_FORM,
        "--max-retries",
        "2",
        "--retry-delay",
        "0.01",
        "--exponential-backoff",
    )
    assert result.returncode == 1
    assert len(fake_twilio.requests) == 3
    assert "retry 2/2 in 0.02s" in result.stderr


def test_raw_retries_a_400_only_when_told(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    bad = FakeTwilio.fail_with(400, 21211, "Invalid 'To' Phone Number")
    fake_twilio.enqueue(bad)
    plain = smsdest(*_CREATE, *_CREATE_FORM, "--max-retries", "2", "--retry-delay", "0.01")
    assert plain.returncode == 1
    assert len(fake_twilio.requests) == 1
    assert json.loads(plain.stdout)["code"] == 21211

    fake_twilio.enqueue(bad)
    told = smsdest(
        *_CREATE,
        *_CREATE_FORM,
        "--max-retries",
        "2",
        "--retry-delay",
        "0.01",
        "--retry-on-all-errors",
    )
    assert told.returncode == 0, told.stderr
    assert len(fake_twilio.requests) == 3
    assert "HTTP 400; retry 1/2" in told.stderr


def test_raw_honours_retry_after(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    fake_twilio.enqueue(ScriptedResponse(429, headers={"Retry-After": "1"}))
    result = smsdest(*_CREATE, *_CREATE_FORM, "--max-retries", "1", "--retry-delay", "0")
    assert result.returncode == 0, result.stderr
    first, second = fake_twilio.requests
    assert second.received_at - first.received_at >= 0.9
    assert "retry 1/1 in 1s" in result.stderr


def test_raw_retries_a_refused_connection(smsdest: Run, fake_twilio: FakeTwilio) -> None:
    env = cli_env(
        SMS_TWILIO_BASE_URL="http://127.0.0.1:9",  # nothing listens on the discard port
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    started = time.monotonic()
    result = smsdest(
        "twilio",
        "raw",
        "GET",
        "/Accounts.json",
        "--max-retries",
        "1",
        "--retry-delay",
        "0.01",
        env=env,
    )
    assert result.returncode == 1
    assert "retry 1/1" in result.stderr
    assert "cannot reach Twilio: ConnectError" in result.stderr
    assert time.monotonic() - started < 30


def test_cli_normalizes_numbers(smsdest: Run, redis_client: redis.Redis) -> None:
    assert smsdest("suppressions", "add", "+١٤١٥٥٥٥٠٠٧٧").returncode == 0
    assert redis_client.hkeys(keys.SUPPRESSIONS) == ["+14155550077"]
    sent = smsdest(
        "messages",
        "send",
        "--to",
        "＋１４１５５５５００７７\n",
        "--body",
        "hi",
        "--from",
        "+15005550006",
    )
    assert sent.returncode == 0, sent.stderr
    assert lines(sent.stdout)[0]["decision"] == "opted_out"
