"""`smsdest suppressions …`: the suppression list."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.plumbing import (
    CliError,
    add_operation,
    emit,
)

if TYPE_CHECKING:
    from app.cli.plumbing import Subcommands
    from app.services import Services


def _number(raw: str, services: Services) -> str:
    from app.pipeline.recipients import InvalidRecipient, normalize_phone

    try:
        return normalize_phone(raw, services.settings.default_region)
    except InvalidRecipient as exc:
        raise CliError(str(exc)) from None


async def suppressions_list(_: argparse.Namespace, services: Services) -> None:
    suppressions = services.suppressions
    cursor = 0
    while True:
        items, cursor = await suppressions.page(cursor, 1000)
        for item in items:
            emit(item.to_json())
        if cursor == 0:
            return


async def suppressions_get(args: argparse.Namespace, services: Services) -> None:
    found = await services.suppressions.get(_number(args.number, services))
    if found is None:
        raise CliError(f"{args.number} is not suppressed")
    emit(found.to_json())


async def suppressions_add(args: argparse.Namespace, services: Services) -> None:
    suppressions = services.suppressions
    number = _number(args.number, services)
    added = await suppressions.add(number, "cli")
    found = await suppressions.get(number)
    emit({**(found.to_json() if found else {"number": number}), "added": added})


async def suppressions_remove(args: argparse.Namespace, services: Services) -> None:
    number = _number(args.number, services)
    if not await services.suppressions.remove(number):
        raise CliError(f"{args.number} is not suppressed")
    emit({"number": number, "removed": True})


def add_suppression_commands(commands: Subcommands) -> None:
    group = commands.add_parser(
        "suppressions",
        help="numbers never texted (opted out)",
        description="The suppression list (needs SMS_REDIS_URL). Numbers may be national "
        "(SMS_DEFAULT_REGION) or E.164.",
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_operation(
        actions, "list", suppressions_list, "every suppressed number (JSON Lines)", redis=True
    )
    for name, operation, help in (
        ("get", suppressions_get, "one suppressed number"),
        ("add", suppressions_add, "suppress a number"),
        ("remove", suppressions_remove, "lift a suppression"),
    ):
        add_operation(actions, name, operation, help, redis=True).add_argument(
            "number", metavar="NUMBER"
        )
