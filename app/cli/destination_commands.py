"""`smsdest test DESTINATION EVENT.json [--send]`, `smsdest reload` and
`smsdest destinations pause|resume ID`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.access import (
    EXIT_FAILED,
    EXIT_NOT_SENT,
    Backend,
    add_access_command,
)
from app.cli.delivery_commands import destination_id, moment
from app.cli.output import Output
from app.cli.plumbing import CliError

if TYPE_CHECKING:
    from app.cli.plumbing import Subcommands

_MAX_EVENT_BYTES = 1_048_576


def _read_event(path: str) -> dict[str, Any]:
    try:
        raw = (
            sys.stdin.buffer.read(_MAX_EVENT_BYTES + 1) if path == "-" else Path(path).read_bytes()
        )
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    if len(raw) > _MAX_EVENT_BYTES:
        raise CliError(f"{path}: over {_MAX_EVENT_BYTES} bytes")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{path}: not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise CliError(f"{path}: an event is a JSON object (one event, not a batch)")
    return event


async def test_destination(args: argparse.Namespace, backend: Backend, out: Output) -> int:
    """Print the trace; exit 0 when the event would be (or was) sent, 5 when not, 1 when
    Twilio refused it."""
    trace = await backend.trace(args.destination, _read_event(args.event), args.send)
    out.record(trace, title=f"{args.destination}: {trace.get('decision')}")
    decision = trace.get("decision")
    if decision in ("would_send", "sent"):
        return 0
    return EXIT_FAILED if decision == "failed" else EXIT_NOT_SENT


async def reload_destinations(_: argparse.Namespace, backend: Backend, out: Output) -> None:
    result = await backend.reload()
    if out.as_json:
        out.record(result)
        return
    out.console.print(
        f"reloaded {result['file']}: {result['destinations']} destination(s), "
        f"generation {result['generation']}"
    )


async def pause_destination(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    state = await backend.pause(args.destination, args.reason, args.until)
    if out.as_json:
        out.record(state)
        return
    out.console.print(state["pause"]["detail"])


async def resume_destination(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    state = await backend.resume(args.destination)
    if out.as_json:
        out.record(state)
        return
    out.console.print(f"{args.destination} resumed: {state['released']} held deliveries released")


def add_destination_commands(commands: Subcommands) -> None:
    group = commands.add_parser("destinations", help="pause and resume destinations")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    pause = add_access_command(
        actions,
        "pause",
        pause_destination,
        "pause a destination: it admits nothing, its admitted deliveries are held",
        description="Pause a destination (through SMS_API_URL, or its Redis): events for it "
        "are answered destination_paused, deliveries already admitted are held (not sent, not "
        "failed) until it resumes. Exit 3: no such destination.",
    )
    pause.add_argument("destination", type=destination_id, metavar="ID")
    pause.add_argument("--reason", help="why, in words (shown in every decision)")
    pause.add_argument("--until", type=moment, help="end it by itself then (ISO 8601, UTC)")
    resume = add_access_command(
        actions,
        "resume",
        resume_destination,
        "resume a paused destination; its held deliveries go out",
        description="Resume a destination: it admits again and its held deliveries are due "
        "at once (still checked at send time). A budget pause resumed waives the rest of "
        "that day's budget. Exit 3: no such destination.",
    )
    resume.add_argument("destination", type=destination_id, metavar="ID")
    test = add_access_command(
        commands,
        "test",
        test_destination,
        "run one event through one destination and print the trace",
        description="Run one event (a JSON file, or - for stdin) through one destination and "
        "print every step: filters, recipient, body, encoding, segments, throttle, opt-out. "
        "Nothing is consumed; --send really sends it (never to an opted-out number). Exit "
        "0: would send (or sent); 5: would not; 1: Twilio refused it.",
    )
    test.add_argument("destination", type=destination_id, metavar="DESTINATION")
    test.add_argument("event", metavar="EVENT.json")
    test.add_argument("--send", action="store_true", help="really send it through Twilio")
    add_access_command(
        commands,
        "reload",
        reload_destinations,
        "reload the destinations file in every serve process",
        description="Validate the destinations file in full, then have every `serve` process "
        "load it (through SMS_API_URL, or through Redis: each serve polls a generation "
        "counter every SMS_CONFIG_POLL_INTERVAL). Exit 4: the file is invalid, nothing "
        "changed.",
    )
