"""`smsdest twilio raw`: any request to Twilio's REST API with our credentials."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.plumbing import (
    CliError,
    add_operation,
    file_field,
    header,
    int_range,
    json_value,
    key_value,
    note,
    seconds_type,
)

if TYPE_CHECKING:
    import httpx

    from app.cli.plumbing import Subcommands
    from app.services import Services
    from app.twilio.client import TwilioClient


async def twilio_raw(args: argparse.Namespace, services: Services) -> int:
    """One request to Twilio's REST API with our credentials, retried as asked."""
    from app.twilio.errors import TwilioTransportError

    request = _raw_request_options(args)
    attempt = 0
    while True:
        try:
            response = await _twilio_client(services).raw_request(args.method, args.path, **request)
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
        note(f"{outcome}; retry {attempt}/{args.max_retries} in {delay:g}s")
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


def _twilio_client(services: Services) -> TwilioClient:
    """The Twilio client behind the provider: `twilio raw` speaks Twilio's API itself."""
    from app.twilio.provider import TwilioProvider

    provider = services.provider
    if not isinstance(provider, TwilioProvider):
        raise CliError(f"the provider is {provider.name}, not Twilio")
    return provider.client


def add_twilio_commands(commands: Subcommands) -> None:
    group = commands.add_parser("twilio", help="talk to Twilio's REST API directly")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    raw = add_operation(
        actions,
        "raw",
        twilio_raw,
        "any request to the 2010-04-01 API with our credentials",
        twilio=True,
        json_flag=False,  # its --json is the request's body; its output is JSON already
        description="Send one request to {SMS_TWILIO_BASE_URL}/2010-04-01 + PATH with the "
        "configured Twilio credentials. $TWILIO_ACCOUNT_SID (quote it so the shell leaves "
        "it), ${TWILIO_ACCOUNT_SID} and {AccountSid} in PATH become the account SID. Prints "
        "the status (HTTP 201) on stderr and the body on stdout; exits 0 for 2xx, else 1. "
        "Retries, when asked, happen on 429, 5xx and connection errors before sending.",
    )
    raw.add_argument("method", metavar="METHOD", help="GET, POST, DELETE, …")
    raw.add_argument("path", metavar="PATH", help="e.g. '/Accounts/$TWILIO_ACCOUNT_SID.json'")
    repeatable: dict[str, Any] = {"action": "append", "default": []}
    raw.add_argument("--query", type=key_value, metavar="K=V", help="query parameter", **repeatable)
    raw.add_argument(
        "--form", type=key_value, metavar="K=V", help="form field (keys may repeat)", **repeatable
    )
    raw.add_argument("--json", type=json_value, metavar="JSON", help="a JSON body")
    raw.add_argument(
        "--file", type=file_field, metavar="FIELD=@PATH", help="multipart file", **repeatable
    )
    raw.add_argument("--header", type=header, metavar="'NAME: VALUE'", **repeatable)
    raw.add_argument("--response-type", choices=("json", "text", "bytes"), default="json")
    raw.add_argument("--timeout", type=seconds_type, metavar="SECONDS")
    raw.add_argument("--max-retries", type=int_range(0), default=0, metavar="N")
    raw.add_argument("--retry-delay", type=seconds_type, default=1.0, metavar="SECONDS")
    raw.add_argument("--exponential-backoff", action="store_true", help="double each delay")
    raw.add_argument(
        "--retry-on-all-errors",
        action="store_true",
        help="also retry any non-2xx answer and any transport error",
    )
