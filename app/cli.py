"""`smsdest`: serve the API (with a worker), run extra workers, check a destinations file,
and every operator operation (messages, suppressions, raw Twilio requests) as a command.

Operations print JSON on stdout (one object, or JSON Lines for lists) and errors as
`smsdest: <message>` on stderr: exit 2 for a bad command line, bad input or bad settings,
1 when Twilio (or Redis) fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from app.destinations import ConfigError
from app.settings import Settings, SettingsError

_T = TypeVar("_T")

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis

    from app.errors import ServiceError
    from app.messages import MessageService
    from app.store.suppressions import SuppressionList
    from app.twilio.client import TwilioClient
    from app.twilio.errors import TwilioApiError

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
    Operation = Callable[[argparse.Namespace, "Session"], Awaitable[int | None]]

log = logging.getLogger("smsdest")


class CliError(Exception):
    """Ends a command: `smsdest: <message>` on stderr, `code` as the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(f"invalid settings:\n{problems}") from None


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """Run `main` on uvloop when installed (as uvicorn does for serve), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- serve, worker, check-config ---------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings()
    _configure_logging(settings.log_level)
    app = create_app(settings, run_worker=not args.no_worker)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def worker(_: argparse.Namespace) -> None:
    from app.main import (
        BackgroundJobs,
        build_twilio_client,
        load_configured_destinations,
        open_resources,
    )
    from app.store.deliveries import DeliveryLog

    settings = _settings()
    _configure_logging(settings.log_level)
    if settings.redis_url is None:
        raise SettingsError("smsdest worker needs SMS_REDIS_URL (the embedded Redis is serve's)")
    load_configured_destinations(settings)  # same config checks as serve

    async def run() -> None:
        async with open_resources(settings) as (redis, http):
            deliveries = DeliveryLog(redis, settings.dedupe_ttl, settings.delivery_retention)
            jobs = BackgroundJobs(settings, redis, deliveries, build_twilio_client(settings, http))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, jobs.stop)
            log.info("worker started")
            await jobs.run()

    run_event_loop(run())


def check_config(args: argparse.Namespace) -> None:
    from app.destinations import load_destinations
    from app.pipeline.render import TemplateRenderer

    settings = _settings()
    path = Path(args.file) if args.file else settings.destinations_file
    destinations = load_destinations(path, TemplateRenderer(settings.templates_dir))
    print(f"{path}: OK, {len(destinations)} destination(s)")


# --- shared plumbing of the operations ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """What an operation works with, wired as the app wires it."""

    settings: Settings
    twilio: TwilioClient
    redis: Redis | None  # None for operations that only talk to Twilio

    def messages(self) -> MessageService:
        from app.messages import MessageService
        from app.store.connection import connect
        from app.store.deliveries import DeliveryLog

        # get/list/redact/delete never touch the delivery log, so they run without Redis:
        # redis-py connects on a client's first command, and this one never gets any (were
        # it ever used, the .invalid host fails at once instead of reaching some other Redis).
        redis = self.redis or connect("redis://redis-not-configured.invalid")
        deliveries = DeliveryLog(redis, self.settings.dedupe_ttl, self.settings.delivery_retention)
        return MessageService(
            deliveries,
            self.twilio,
            self.settings.global_test_mode,
            self.settings.delivery_retention,
        )

    def suppressions(self) -> SuppressionList:
        from app.store.suppressions import SuppressionList

        assert self.redis is not None, "suppression commands are declared with redis=True"
        return SuppressionList(self.redis)


@contextlib.asynccontextmanager
async def _open_session(settings: Settings, *, redis: bool) -> AsyncIterator[Session]:
    """Redis and the HTTP client through `open_resources`, or the HTTP client alone."""
    from app.main import build_http_client, build_twilio_client, open_resources

    if redis:
        async with open_resources(settings) as (client, http):
            yield Session(settings, build_twilio_client(settings, http), client)
    else:
        async with build_http_client(settings) as http:
            yield Session(settings, build_twilio_client(settings, http), None)


def _require_twilio(settings: Settings, prog: str) -> None:
    if not settings.has_twilio_credentials:
        raise SettingsError(
            f"{prog} needs Twilio credentials: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET)"
        )


def _run(
    operation: Operation, args: argparse.Namespace, *, prog: str, redis: bool, twilio: bool
) -> int:
    """Check the settings the operation needs, open a session, run it, map its errors."""
    settings = _settings()
    if redis and settings.redis_url is None:
        raise SettingsError(f"{prog} needs SMS_REDIS_URL (the embedded Redis is serve's)")
    if twilio:
        _require_twilio(settings, prog)

    async def run() -> int:
        async with _open_session(settings, redis=redis) as session:
            return await operation(args, session) or 0

    try:
        return asyncio.run(run())
    except Exception as exc:
        failure = _as_cli_error(exc)
        if failure is None:
            raise
        raise failure from None


def _as_cli_error(exc: Exception) -> CliError | None:
    """The exit status and message for a domain failure; None for anything unexpected."""
    from redis.exceptions import RedisError

    from app.errors import ServiceError
    from app.twilio.errors import TwilioApiError, TwilioTransportError

    if isinstance(exc, ServiceError):
        return CliError(_service_error_text(exc), 2 if exc.status_code < 500 else 1)
    if isinstance(exc, ValidationError):
        return CliError(_validation_text("invalid input", exc, lambda loc: loc or "input"))
    if isinstance(exc, TwilioApiError):
        return CliError(_twilio_error_text(exc), 1)
    if isinstance(exc, TwilioTransportError):
        return CliError(f"cannot reach Twilio: {exc.message}", 1)
    if isinstance(exc, RedisError):
        return CliError(f"Redis failed: {exc}", 1)
    return None


def _service_error_text(exc: ServiceError) -> str:
    detail = exc.detail
    if isinstance(detail, list):  # InvalidInput: [{"field": …, "problem": …}]
        lines = [
            f"  {item.get('field')}: {item.get('problem')}"
            if isinstance(item, dict)
            else f"  {item}"
            for item in detail
        ]
        return exc.error.replace("_", " ") + ":\n" + "\n".join(lines)
    return str(detail) if detail else exc.error.replace("_", " ")


def _validation_text(title: str, exc: ValidationError, name: Callable[[str], str]) -> str:
    """One line per problem; `name` turns a field's location into what the user typed."""
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        problem = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {name(location)}: {problem}")
    return f"{title}:\n" + "\n".join(lines)


def _twilio_error_text(exc: TwilioApiError) -> str:
    code = f"Twilio error {exc.code}" if exc.code else "Twilio error"
    text = f"{code} (HTTP {exc.http_status}): {exc.message}"
    return text + (f"\n  more info: {exc.more_info}" if exc.more_info else "")


def _emit(value: Any) -> None:
    """One JSON object as a line of stdout, flushed at once (so JSON Lines stream)."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _note(message: str) -> None:
    print(f"smsdest: {message}", file=sys.stderr, flush=True)


def _operation(
    commands: Subcommands,
    name: str,
    operation: Operation,
    help: str,
    *,
    redis: bool = False,
    twilio: bool = False,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a subcommand that runs `operation` in a session (with Redis, needing Twilio)."""
    parser = commands.add_parser(name, help=help, description=description or help)
    run = functools.partial(_run, operation, prog=parser.prog, redis=redis, twilio=twilio)
    parser.set_defaults(run=run)
    return parser


# --- argument types ------------------------------------------------------------------------


def _e164(text: str) -> str:
    from app.pipeline.recipients import InvalidRecipient, normalize_phone

    try:
        return normalize_phone(text, None)
    except InvalidRecipient as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _file_field(text: str) -> tuple[str, Path]:
    field, sep, path = text.partition("=@")
    if not sep or not field or not path:
        raise argparse.ArgumentTypeError(f"expected FIELD=@PATH, got {text!r}")
    return field, Path(path)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


# --- messages -------------------------------------------------------------------------------


async def messages_send(args: argparse.Namespace, session: Session) -> None:
    """Queue one message through the delivery pipeline, validated as the API validates it."""
    from app.messages import MessageCreate

    fields = {
        "to": args.to,
        "body": args.body,
        "media_url": args.media_url,
        "from": args.from_number,
        "messaging_service_sid": args.messaging_service_sid,
        "status_callback": args.status_callback,
        "validity_period": args.validity_period,
        "send_at": args.send_at,
    }
    try:
        request = MessageCreate.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise CliError(_validation_text("invalid message", exc, _option_name)) from None
    admission = await session.messages().send(request, args.idempotency_key)
    _emit(
        {
            "delivery_id": admission.delivery_id,
            "decision": admission.decision,
            **({"detail": admission.detail} if admission.detail else {}),
        }
    )


def _option_name(field: str) -> str:
    """`send_at` → `--send-at`: MessageCreate's fields are named as the options are."""
    return f"--{field.replace('_', '-')}" if field else "message"


async def messages_get(args: argparse.Namespace, session: Session) -> None:
    message = await session.messages().get(args.sid)
    _emit(message.model_dump(mode="json", by_alias=True))


async def messages_list(args: argparse.Namespace, session: Session) -> None:
    """One page, or with --all every page as it arrives (one page in memory at a time)."""
    from app.messages import MessageListQuery

    if args.max_pages is not None and not args.all:
        raise CliError("--max-pages only applies with --all")
    max_pages = args.max_pages or 100
    service = session.messages()
    query = MessageListQuery(
        args.to,
        args.from_number,
        args.date_sent,
        args.date_sent_before,
        args.date_sent_after,
        args.page_size,
        args.cursor,
    )
    pages = 0
    while True:
        page = await service.list(query)
        pages += 1
        for message in page.messages:
            _emit(message.model_dump(mode="json", by_alias=True))
        cursor = page.next_page_uri
        if not args.all or cursor is None:
            break
        if pages >= max_pages:
            _note(f"stopped after {pages} pages (--max-pages); more remain, resume with --cursor")
            break
        query = MessageListQuery(cursor=cursor)  # the cursor carries the filters and size
    if not args.all or cursor is not None:
        print(json.dumps({"next_cursor": cursor}), file=sys.stderr, flush=True)


async def messages_cancel(args: argparse.Namespace, session: Session) -> None:
    if not args.reference.startswith("dl_"):
        _require_twilio(session.settings, "smsdest messages cancel SID")
    _emit(await session.messages().cancel(args.reference))


async def messages_redact(args: argparse.Namespace, session: Session) -> None:
    message = await session.messages().redact(args.sid)
    _emit(message.model_dump(mode="json", by_alias=True))


async def messages_delete(args: argparse.Namespace, session: Session) -> None:
    await session.messages().delete(args.sid)
    _emit({"sid": args.sid, "deleted": True})


def _add_message_commands(commands: Subcommands) -> None:
    group = commands.add_parser("messages", help="send, get, list, cancel, redact, delete")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    send = _operation(
        actions,
        "send",
        messages_send,
        "queue a message (a worker sends it)",
        redis=True,
        description="Queue one message through the delivery pipeline, checked as "
        "POST /v1/messages checks it. This only queues: a running `smsdest serve` or "
        "`smsdest worker` sends it. Needs SMS_REDIS_URL.",
    )
    send.add_argument(
        "--to", required=True, metavar="NUMBER", help="E.164 number, e.g. +14155552671"
    )
    send.add_argument("--body", help="the text (up to 1600 characters)")
    send.add_argument(
        "--media-url", action="append", metavar="URL", help="media to attach (repeatable)"
    )
    sender = send.add_mutually_exclusive_group(required=True)
    sender.add_argument("--from", dest="from_number", metavar="NUMBER", help="E.164 sender")
    sender.add_argument("--messaging-service-sid", metavar="MG…", help="or a Messaging Service")
    send.add_argument("--status-callback", metavar="URL")
    send.add_argument("--validity-period", type=int, metavar="SECONDS")
    send.add_argument(
        "--send-at", metavar="ISO8601", help="send later (no offset means UTC); cancel with its id"
    )
    send.add_argument("--idempotency-key", type=_idempotency_key, metavar="KEY")

    get = _operation(actions, "get", messages_get, "one message from Twilio", twilio=True)
    get.add_argument("sid", metavar="SID")

    listing = _operation(
        actions,
        "list",
        messages_list,
        "the account's messages (JSON Lines)",
        twilio=True,
        description="List the account's messages, newest first, as JSON Lines. Without --all: "
        'one page, then {"next_cursor": …} on stderr (pass it back with --cursor).',
    )
    listing.add_argument("--to", type=_e164, metavar="NUMBER")
    listing.add_argument("--from", dest="from_number", type=_e164, metavar="NUMBER")
    listing.add_argument("--date-sent", type=_day, metavar="YYYY-MM-DD")
    listing.add_argument("--date-sent-before", type=_day, metavar="YYYY-MM-DD")
    listing.add_argument("--date-sent-after", type=_day, metavar="YYYY-MM-DD")
    listing.add_argument("--page-size", type=_int_range(1, 1000), default=50, metavar="N")
    listing.add_argument("--cursor", metavar="URI", help="a previous next_cursor (has the filters)")
    listing.add_argument("--all", action="store_true", help="follow every page, streaming")
    listing.add_argument(
        "--max-pages", type=_int_range(1), metavar="N", help="with --all: stop after N (100)"
    )

    cancel = _operation(
        actions,
        "cancel",
        messages_cancel,
        "cancel a scheduled message",
        redis=True,
        description="Cancel a scheduled message: one held here (delivery id dl_…) or one "
        "Twilio holds (SID). Needs SMS_REDIS_URL.",
    )
    cancel.add_argument("reference", metavar="REF", help="delivery id (dl_…) or SID")

    redact = _operation(actions, "redact", messages_redact, "blank a message's body", twilio=True)
    redact.add_argument("sid", metavar="SID")
    delete = _operation(actions, "delete", messages_delete, "delete a message", twilio=True)
    delete.add_argument("sid", metavar="SID")


def _idempotency_key(text: str) -> str:
    if not 0 < len(text) <= 200:
        raise argparse.ArgumentTypeError("must be 1 to 200 characters")
    return text


# --- suppressions ---------------------------------------------------------------------------


def _number(raw: str, session: Session) -> str:
    from app.pipeline.recipients import InvalidRecipient, normalize_phone

    try:
        return normalize_phone(raw, session.settings.default_region)
    except InvalidRecipient as exc:
        raise CliError(str(exc)) from None


async def suppressions_list(_: argparse.Namespace, session: Session) -> None:
    suppressions = session.suppressions()
    cursor = 0
    while True:
        items, cursor = await suppressions.page(cursor, 1000)
        for item in items:
            _emit(item.to_json())
        if cursor == 0:
            return


async def suppressions_get(args: argparse.Namespace, session: Session) -> None:
    found = await session.suppressions().get(_number(args.number, session))
    if found is None:
        raise CliError(f"{args.number} is not suppressed")
    _emit(found.to_json())


async def suppressions_add(args: argparse.Namespace, session: Session) -> None:
    suppressions = session.suppressions()
    number = _number(args.number, session)
    added = await suppressions.add(number, "cli")
    found = await suppressions.get(number)
    _emit({**(found.to_json() if found else {"number": number}), "added": added})


async def suppressions_remove(args: argparse.Namespace, session: Session) -> None:
    number = _number(args.number, session)
    if not await session.suppressions().remove(number):
        raise CliError(f"{args.number} is not suppressed")
    _emit({"number": number, "removed": True})


def _add_suppression_commands(commands: Subcommands) -> None:
    group = commands.add_parser(
        "suppressions",
        help="numbers never texted (opted out)",
        description="The suppression list (needs SMS_REDIS_URL). Numbers may be national "
        "(SMS_DEFAULT_REGION) or E.164.",
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    _operation(
        actions, "list", suppressions_list, "every suppressed number (JSON Lines)", redis=True
    )
    for name, operation, help in (
        ("get", suppressions_get, "one suppressed number"),
        ("add", suppressions_add, "suppress a number"),
        ("remove", suppressions_remove, "lift a suppression"),
    ):
        _operation(actions, name, operation, help, redis=True).add_argument(
            "number", metavar="NUMBER"
        )


# --- twilio raw -----------------------------------------------------------------------------


async def twilio_raw(args: argparse.Namespace, session: Session) -> int:
    """One request to Twilio's REST API with our credentials, retried as asked."""
    from app.twilio.errors import TwilioTransportError

    request = _raw_request_options(args)
    attempt = 0
    while True:
        try:
            response = await session.twilio.raw_request(args.method, args.path, **request)
        except ValueError as exc:  # the path is refused before anything is sent
            raise CliError(str(exc)) from None
        except TwilioTransportError as exc:
            if attempt >= args.max_retries or not (
                args.retry_on_all_errors or not exc.request_sent
            ):
                raise
            delay, outcome = _backoff(args, attempt, None), exc.message
        else:
            status = response.status_code
            retryable = args.retry_on_all_errors or status == 429 or status >= 500
            if response.is_success or not retryable or attempt >= args.max_retries:
                break
            delay, outcome = _backoff(args, attempt, response), f"HTTP {status}"
        attempt += 1
        _note(f"{outcome}; retry {attempt}/{args.max_retries} in {delay:g}s")
        await asyncio.sleep(delay)
    print(f"HTTP {response.status_code}", file=sys.stderr, flush=True)
    _write_body(response, args.response_type)
    return 0 if response.is_success else 1


def _raw_request_options(args: argparse.Namespace) -> dict[str, Any]:
    """raw_request's keyword arguments from the command line (files read into memory)."""
    import mimetypes

    if args.timeout == 0:
        raise CliError("--timeout must be more than 0 seconds")
    if args.json is not None and (args.form or args.file):
        raise CliError("--json cannot be combined with --form or --file")
    if "/Accounts//" in args.path:
        raise CliError(
            "the account SID in PATH is empty: the shell expanded $TWILIO_ACCOUNT_SID; "
            "quote it ('$TWILIO_ACCOUNT_SID') to let smsdest fill it in"
        )
    query: dict[str, list[str]] = {}
    for key, value in args.query:
        query.setdefault(key, []).append(value)
    form: dict[str, list[str]] = {}
    for key, value in args.form:
        form.setdefault(key, []).append(value)
    files: dict[str, tuple[str, bytes, str]] = {}
    for field, path in args.file:
        if field in files:
            raise CliError(f"--file {field} given twice")
        try:
            content = path.read_bytes()  # bytes, not a handle: a retry sends them again
        except OSError as exc:
            raise CliError(f"--file {field}: cannot read {path}: {exc.strerror}") from None
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files[field] = (path.name, content, kind)
    return {
        "params": query or None,
        "form": form or None,
        "json": args.json,
        "files": files or None,
        "headers": dict(args.header) or None,
        "timeout": args.timeout,
    }


def _backoff(args: argparse.Namespace, attempt: int, response: httpx.Response | None) -> float:
    """Retry-After when the answer has one, else --retry-delay (doubling if asked)."""
    from app.twilio.client import retry_after_seconds

    retry_after = retry_after_seconds(response.headers.get("Retry-After")) if response else None
    if retry_after is not None:
        return retry_after
    return float(args.retry_delay * (2**attempt if args.exponential_backoff else 1))


def _write_body(response: httpx.Response, kind: str) -> None:
    if kind == "bytes":
        sys.stdout.buffer.write(response.content)
        sys.stdout.buffer.flush()
        return
    text = response.text
    if kind == "json" and text:
        with contextlib.suppress(ValueError):  # not JSON after all: print it as text
            text = json.dumps(response.json(), indent=2)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def _add_twilio_commands(commands: Subcommands) -> None:
    group = commands.add_parser("twilio", help="talk to Twilio's REST API directly")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    raw = _operation(
        actions,
        "raw",
        twilio_raw,
        "any request to the 2010-04-01 API with our credentials",
        twilio=True,
        description="Send one request to {SMS_TWILIO_BASE_URL}/2010-04-01 + PATH with the "
        "configured Twilio credentials. $TWILIO_ACCOUNT_SID (quote it so the shell leaves "
        "it), ${TWILIO_ACCOUNT_SID} and {AccountSid} in PATH become the account SID. Prints "
        "the status (HTTP 201) on stderr and the body on stdout; exits 0 for 2xx, else 1. "
        "Retries, when asked, happen on 429, 5xx and connection errors before sending.",
    )
    raw.add_argument("method", metavar="METHOD", help="GET, POST, DELETE, …")
    raw.add_argument("path", metavar="PATH", help="e.g. '/Accounts/$TWILIO_ACCOUNT_SID.json'")
    repeatable: dict[str, Any] = {"action": "append", "default": []}
    raw.add_argument(
        "--query", type=_key_value, metavar="K=V", help="query parameter", **repeatable
    )
    raw.add_argument(
        "--form", type=_key_value, metavar="K=V", help="form field (keys may repeat)", **repeatable
    )
    raw.add_argument("--json", type=_json_value, metavar="JSON", help="a JSON body")
    raw.add_argument(
        "--file", type=_file_field, metavar="FIELD=@PATH", help="multipart file", **repeatable
    )
    raw.add_argument("--header", type=_header, metavar="'NAME: VALUE'", **repeatable)
    raw.add_argument("--response-type", choices=("json", "text", "bytes"), default="json")
    raw.add_argument("--timeout", type=_seconds, metavar="SECONDS")
    raw.add_argument("--max-retries", type=_int_range(0), default=0, metavar="N")
    raw.add_argument("--retry-delay", type=_seconds, default=1.0, metavar="SECONDS")
    raw.add_argument("--exponential-backoff", action="store_true", help="double each delay")
    raw.add_argument(
        "--retry-on-all-errors",
        action="store_true",
        help="also retry any non-2xx answer and any transport error",
    )


# --- the command line -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsdest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP API (and a send worker)")
    serve_cmd.add_argument("--host", help="default: SMS_HOST")
    serve_cmd.add_argument("--port", type=int, help="default: SMS_PORT")
    serve_cmd.add_argument("--no-worker", action="store_true", help="API only, no send worker")
    serve_cmd.set_defaults(run=serve)
    commands.add_parser("worker", help="run one extra send worker").set_defaults(run=worker)
    check = commands.add_parser("check-config", help="validate a destinations file")
    check.add_argument("file", nargs="?", help="default: SMS_DESTINATIONS_FILE")
    check.set_defaults(run=check_config)
    _add_message_commands(commands)
    _add_suppression_commands(commands)
    _add_twilio_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = args.run(args)
    except (ConfigError, SettingsError) as exc:
        print(f"smsdest: {exc}", file=sys.stderr)
        sys.exit(2)
    except CliError as exc:
        print(f"smsdest: {exc.message}", file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`… | head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
