"""What every command shares: settings, the services as the app builds them, error
mapping to exit statuses, JSON output, and argument types."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from app.settings import Settings, SettingsError

_T = TypeVar("_T")

if TYPE_CHECKING:
    from app.destinations import DestinationSet
    from app.errors import ServiceError
    from app.services import Services
    from app.twilio.errors import TwilioApiError

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
    Operation = Callable[[argparse.Namespace, "Services"], Awaitable[int | None]]

log = logging.getLogger("smsdest")


class CliError(Exception):
    """Ends a command: `smsdest: <message>` on stderr, `code` as the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def load_settings() -> Settings:
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


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, redis: bool, destinations: DestinationSet | None = None
) -> AsyncIterator[Services]:
    """The services as the app builds them (`build_services`); with Redis only if asked
    (`destinations`: what ingest matches, e.g. the service's own events a worker emits)."""
    from app.services import build_http_client, build_services
    from app.store.storage import open_store

    async with build_http_client(settings) as http:
        if not redis:
            yield build_services(settings, http, None)
            return
        async with open_store(settings) as store:
            yield build_services(settings, http, store, destinations)


def with_running_redis(settings: Settings, prog: str) -> Settings:
    """`settings` with SMS_REDIS_URL, or else the embedded Redis of a running `serve`."""
    if settings.redis_url is not None:
        return settings
    from app.store.connection import EmbeddedRedis

    url = EmbeddedRedis.running_url(settings.data_dir)
    if url is None:
        raise SettingsError(
            f"{prog} needs SMS_REDIS_URL, or a running `smsdest serve` with its embedded "
            f"Redis under SMS_DATA_DIR ({settings.data_dir}/{EmbeddedRedis.URL_FILE} not found)"
        )
    return settings.model_copy(update={"redis_url": url})


def require_twilio(settings: Settings, prog: str) -> None:
    if not settings.has_twilio_credentials:
        raise SettingsError(
            f"{prog} needs Twilio credentials: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET)"
        )


def _run(
    operation: Operation, args: argparse.Namespace, *, prog: str, redis: bool, twilio: bool
) -> int:
    """Check the settings the operation needs, build the services, run it, map its errors."""
    settings = load_settings()
    if redis:
        settings = with_running_redis(settings, prog)
    if twilio:
        require_twilio(settings, prog)

    async def run() -> int:
        async with open_services(settings, redis=redis) as services:
            return await operation(args, services) or 0

    try:
        return asyncio.run(run())
    except Exception as exc:
        failure = _as_cli_error(exc)
        if failure is None:
            raise
        raise failure from None


def _as_cli_error(exc: Exception) -> CliError | None:
    """The exit status and message for a domain failure; None for anything unexpected."""
    from app.errors import ServiceError
    from app.store import StorageError
    from app.twilio.errors import TwilioApiError, TwilioTransportError

    if isinstance(exc, ServiceError):
        return CliError(_service_error_text(exc), 2 if exc.status_code < 500 else 1)
    if isinstance(exc, ValidationError):
        return CliError(validation_text("invalid input", exc, lambda loc: loc or "input"))
    if isinstance(exc, TwilioApiError):
        return CliError(_twilio_error_text(exc), 1)
    if isinstance(exc, TwilioTransportError):
        return CliError(f"cannot reach Twilio: {exc.message}", 1)
    if isinstance(exc, StorageError):
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


def validation_text(title: str, exc: ValidationError, name: Callable[[str], str]) -> str:
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


def emit(value: Any) -> None:
    """One JSON object as a line of stdout, flushed at once (so JSON Lines stream)."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    print(f"smsdest: {message}", file=sys.stderr, flush=True)


def add_operation(
    commands: Subcommands,
    name: str,
    operation: Operation,
    help: str,
    *,
    redis: bool = False,
    twilio: bool = False,
    description: str | None = None,
    json_flag: bool = True,
) -> argparse.ArgumentParser:
    """Add a subcommand that runs `operation` with the services (with Redis, needing Twilio)."""
    parser = commands.add_parser(name, help=help, description=description or help)
    if json_flag:  # accepted for scripts that pass --json to every command
        parser.add_argument("--json", action="store_true", help="JSON output (the only one)")
    run = functools.partial(_run, operation, prog=parser.prog, redis=redis, twilio=twilio)
    parser.set_defaults(run=run)
    return parser


def e164(text: str) -> str:
    """A phone number normalized to ASCII E.164, as every edge of the service does."""
    from app.pipeline.recipients import InvalidRecipient, normalize_phone

    try:
        return normalize_phone(text, None)
    except InvalidRecipient as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
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


def seconds_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return value


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def file_field(text: str) -> tuple[str, Path]:
    field, sep, path = text.partition("=@")
    if not sep or not field or not path:
        raise argparse.ArgumentTypeError(f"expected FIELD=@PATH, got {text!r}")
    return field, Path(path)


def header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
