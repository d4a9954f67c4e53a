"""`smsdest messages …`: send, get, list, cancel, redact, delete."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.cli.plumbing import (
    CliError,
    add_operation,
    day,
    e164,
    emit,
    int_range,
    note,
    require_twilio,
    validation_text,
)

if TYPE_CHECKING:
    from app.cli.plumbing import Subcommands
    from app.services import Services


async def messages_send(args: argparse.Namespace, services: Services) -> None:
    """Queue one message through the delivery pipeline, validated as the API validates it."""
    from app.bodies import MessageCreate

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
        raise CliError(validation_text("invalid message", exc, _option_name)) from None
    admission = await services.messages.send(request, args.idempotency_key)
    emit(
        {
            "delivery_id": admission.delivery_id,
            "decision": admission.decision,
            **({"detail": admission.detail} if admission.detail else {}),
        }
    )


def _option_name(field: str) -> str:
    """`send_at` → `--send-at`: MessageCreate's fields are named as the options are."""
    return f"--{field.replace('_', '-')}" if field else "message"


async def messages_get(args: argparse.Namespace, services: Services) -> None:
    message = await services.messages.get(args.sid)
    emit(dict(message.raw))


async def messages_list(args: argparse.Namespace, services: Services) -> None:
    """One page, or with --all every page as it arrives (one page in memory at a time)."""
    from app.sms.reports import MessageQuery

    if args.max_pages is not None and not args.all:
        raise CliError("--max-pages only applies with --all")
    max_pages = args.max_pages or 100
    service = services.messages
    query = MessageQuery(
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
            emit(dict(message.raw))
        cursor = page.next_cursor
        if not args.all or cursor is None:
            break
        if pages >= max_pages:
            note(f"stopped after {pages} pages (--max-pages); more remain, resume with --cursor")
            break
        query = MessageQuery(cursor=cursor)  # the cursor carries the filters and size
    if not args.all or cursor is not None:
        print(json.dumps({"next_cursor": cursor}), file=sys.stderr, flush=True)


async def messages_cancel(args: argparse.Namespace, services: Services) -> None:
    if not args.reference.startswith("dl_"):
        require_twilio(services.settings, "smsdest messages cancel SID")
    emit(await services.messages.cancel(args.reference))


async def messages_redact(args: argparse.Namespace, services: Services) -> None:
    message = await services.messages.redact(args.sid)
    emit(dict(message.raw))


async def messages_delete(args: argparse.Namespace, services: Services) -> None:
    await services.messages.delete(args.sid)
    emit({"sid": args.sid, "deleted": True})


def add_message_commands(commands: Subcommands) -> None:
    group = commands.add_parser("messages", help="send, get, list, cancel, redact, delete")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    send = add_operation(
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

    get = add_operation(actions, "get", messages_get, "one message from Twilio", twilio=True)
    get.add_argument("sid", metavar="SID")

    listing = add_operation(
        actions,
        "list",
        messages_list,
        "the account's messages (JSON Lines)",
        twilio=True,
        description="List the account's messages, newest first, as JSON Lines. Without --all: "
        'one page, then {"next_cursor": …} on stderr (pass it back with --cursor).',
    )
    listing.add_argument("--to", type=e164, metavar="NUMBER")
    listing.add_argument("--from", dest="from_number", type=e164, metavar="NUMBER")
    listing.add_argument("--date-sent", type=day, metavar="YYYY-MM-DD")
    listing.add_argument("--date-sent-before", type=day, metavar="YYYY-MM-DD")
    listing.add_argument("--date-sent-after", type=day, metavar="YYYY-MM-DD")
    listing.add_argument("--page-size", type=int_range(1, 1000), default=50, metavar="N")
    listing.add_argument("--cursor", metavar="URI", help="a previous next_cursor (has the filters)")
    listing.add_argument("--all", action="store_true", help="follow every page, streaming")
    listing.add_argument(
        "--max-pages", type=int_range(1), metavar="N", help="with --all: stop after N (100)"
    )

    cancel = add_operation(
        actions,
        "cancel",
        messages_cancel,
        "cancel a scheduled message",
        redis=True,
        description="Cancel a scheduled message: one held here (delivery id dl_…) or one "
        "Twilio holds (SID). Needs SMS_REDIS_URL.",
    )
    cancel.add_argument("reference", metavar="REF", help="delivery id (dl_…) or SID")

    redact = add_operation(
        actions, "redact", messages_redact, "blank a message's body", twilio=True
    )
    redact.add_argument("sid", metavar="SID")
    delete = add_operation(actions, "delete", messages_delete, "delete a message", twilio=True)
    delete.add_argument("sid", metavar="SID")


def _idempotency_key(text: str) -> str:
    if not 0 < len(text) <= 200:
        raise argparse.ArgumentTypeError("must be 1 to 200 characters")
    return text
