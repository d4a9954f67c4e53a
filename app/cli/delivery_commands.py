"""`smsdest deliveries list|get|tail|replay`: the delivery log, from Redis or the API."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.cli.access import Backend, DeliveryFilter, add_access_command
from app.cli.output import Output
from app.cli.plumbing import CliError, e164, int_range, seconds_type

if TYPE_CHECKING:
    from app.cli.plumbing import Subcommands

_PAGE = 500  # the API's largest page
_DELIVERY_ID = re.compile(r"dl_[0-9a-f]{28}")
_DESTINATION = re.compile(r"\$?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def delivery_id(text: str) -> str:
    if not _DELIVERY_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a delivery id (dl_ + 28 hex digits): {text!r}")
    return text


def destination_id(text: str) -> str:
    if not _DESTINATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a destination id: {text!r}")
    return text


def moment(text: str) -> datetime:
    """ISO 8601; without an offset, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _where(args: argparse.Namespace) -> DeliveryFilter:
    since, until = getattr(args, "since", None), getattr(args, "until", None)  # list only
    if since and until and since > until:
        raise CliError("--since is after --until")
    return DeliveryFilter(
        args.destination, args.status, args.recipient, args.error_code, since, until
    )


async def deliveries_list(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    """Newest first, paged through up to --limit; a progress bar past one page."""
    where, wanted = _where(args), args.limit
    table = out.deliveries_table()
    shown, cursor = 0, args.cursor
    with out.progress("deliveries", wanted if wanted > _PAGE else 0) as bar:
        task = bar.add_task("list", total=wanted)
        while shown < wanted:
            items, cursor = await backend.deliveries(where, cursor, min(_PAGE, wanted - shown))
            for item in items:
                if out.as_json:
                    out.delivery_line(item)
                else:
                    out.delivery_row(table, item)
            shown += len(items)
            bar.update(task, completed=shown)
            if cursor is None:
                break
    if not out.as_json:
        out.console.print(table)
    if cursor is not None:
        out.note(f"more: --cursor {cursor}")


async def deliveries_get(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    out.record(await backend.delivery(args.id))


async def deliveries_tail(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    """New deliveries as they are admitted, oldest first, until --count or --for."""
    where = _where(args)
    newest, _ = await backend.deliveries(where, None, 1)
    seen = newest[0]["id"] if newest else ""
    out.note(f"following deliveries after {seen or 'the start'}")
    printed = 0
    stop_at = time.monotonic() + args.duration if args.duration else None
    while True:
        fresh: list[dict[str, Any]] = []
        cursor = None
        for _ in range(20):  # bounded catch-up: 20 pages per poll
            items, cursor = await backend.deliveries(where, cursor, 100)
            fresh.extend(i for i in items if i["id"] > seen)
            if cursor is None or (items and items[-1]["id"] <= seen):
                break
        for item in sorted(fresh, key=lambda i: i["id"]):
            out.delivery_line(item)
            printed += 1
            if args.count and printed >= args.count:
                return
        if fresh:
            seen = max(seen, *(i["id"] for i in fresh))
        if stop_at is not None and time.monotonic() >= stop_at:
            return
        await asyncio.sleep(args.interval)


async def deliveries_replay(args: argparse.Namespace, backend: Backend, out: Output) -> None:
    from app.services.replay import REPLAYABLE, ReplaySelection

    for status in args.status:
        if status not in REPLAYABLE:
            raise CliError(f"--status: {status!r} is not one of {', '.join(REPLAYABLE)}")
    selection = ReplaySelection(
        destination=args.destination,
        statuses=tuple(args.status) if args.status else REPLAYABLE,
        since=args.since,
        until=args.until,
        error_codes=tuple(args.error_code),
        delivery_ids=tuple(args.id),
        limit=args.limit,
    )
    report = await backend.replay(selection, dry_run=not args.send)
    if out.as_json:
        out.record(report)
        return
    from rich.table import Table

    from app.cli.output import styled

    table = Table(title="replay (dry run)" if report["dry_run"] else "replay")
    for column in ("delivery", "destination", "recipient", "error", "action", "why"):
        table.add_column(column, overflow="fold")
    for item in report["items"]:
        why = item["detail"] or ""
        table.add_row(
            item["delivery_id"],
            item["destination"],
            item["recipient"] or "",
            str(item["error_code"] or ""),
            styled(item["reason"] or item["action"]),
            why,
        )
    out.console.print(table)
    done = "would send" if report["dry_run"] else "replayed"
    count = report["would_send"] if report["dry_run"] else report["replayed"]
    out.console.print(
        f"{report['selected']} selected: {count} {done}, {report['skipped']} skipped"
        + (" (more matched: raise --limit)" if report["truncated"] else "")
    )
    if report["dry_run"] and count:
        out.note("nothing was sent: add --send to replay")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", type=destination_id)
    parser.add_argument("--status", help="a delivery status (queued, sent, failed, …)")
    parser.add_argument("--recipient", type=e164, help="E.164")
    parser.add_argument("--error-code", type=int_range(0), help="Twilio's error code")


def add_delivery_commands(commands: Subcommands) -> None:
    group = commands.add_parser("deliveries", help="the delivery log: list, get, tail, replay")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = add_access_command(actions, "list", deliveries_list, "deliveries, newest first")
    _filters(listing)
    listing.add_argument("--since", type=moment, help="created at or after (ISO 8601, UTC)")
    listing.add_argument("--until", type=moment, help="created at or before")
    listing.add_argument("--limit", type=int_range(1, 100_000), default=50, help="default 50")
    listing.add_argument("--cursor", type=delivery_id, help="continue after this delivery")

    get = add_access_command(actions, "get", deliveries_get, "one delivery and its history")
    get.add_argument("id", type=delivery_id)

    tail = add_access_command(actions, "tail", deliveries_tail, "follow new deliveries")
    _filters(tail)
    tail.add_argument("--interval", type=seconds_type, default=1.0, help="poll every S seconds")
    tail.add_argument("--count", type=int_range(1), help="stop after N deliveries")
    tail.add_argument("--for", dest="duration", type=seconds_type, help="stop after S seconds")

    replay = add_access_command(
        actions,
        "replay",
        deliveries_replay,
        "send failed deliveries again (a dry run unless --send)",
        description="Select failed deliveries and say what a replay would send and skip, and "
        "why; with --send, send them, re-checked now (opt-outs, throttle windows, "
        "recipients the event already reached); never twice.",
    )
    replay.add_argument("--destination", type=destination_id)
    replay.add_argument(
        "--status", action="append", default=[], help="failed, undelivered (repeatable)"
    )
    replay.add_argument("--since", type=moment, help="created at or after (ISO 8601, UTC)")
    replay.add_argument("--until", type=moment, help="created before")
    replay.add_argument(
        "--error-code", type=int_range(0), action="append", default=[], help="repeatable"
    )
    replay.add_argument("--id", type=delivery_id, action="append", default=[], help="repeatable")
    replay.add_argument("--limit", type=int_range(1, 1000), default=100)
    replay.add_argument("--send", action="store_true", help="really send (default: dry run)")
