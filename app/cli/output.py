"""What operator commands print: JSON for scripts (`--json`; JSON Lines for lists), else
tables for people — coloured and with progress bars only on a terminal (`rich` leaves
colour out when the output is piped)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from app.cli.plumbing import emit

# How each delivery status and decision reads at a glance.
STYLES: dict[str, str] = {
    "sent": "green",
    "delivered": "bold green",
    "read": "bold green",
    "mocked": "cyan",
    "would_send": "green",
    "replayed": "green",
    "queued": "blue",
    "scheduled": "blue",
    "sending": "blue",
    "retrying": "yellow",
    "throttled": "yellow",
    "skipped": "yellow",
    "duplicate": "yellow",
    "not_matched": "yellow",
    "failed": "bold red",
    "undelivered": "bold red",
    "unknown": "magenta",
    "opted_out": "red",
    "canceled": "dim",
    "external": "dim",
}

_BODY_WIDTH = 40  # characters of a body shown in a list


def styled(value: Any) -> Text:
    text = "" if value is None else str(value)
    return Text(text, style=STYLES.get(text, ""))


class Output:
    """One command's output; `as_json` for scripts."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(soft_wrap=False)
        if not self.console.is_terminal:  # piped: no colour, and no 80-column squeeze
            self.console = Console(soft_wrap=False, width=200)
        self.errors = Console(stderr=True)

    def record(self, value: dict[str, Any], title: str | None = None) -> None:
        """One object: JSON, or a two-column table of its fields."""
        if self.as_json:
            emit(value)
            return
        table = Table(title=title, show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, item in value.items():
            if isinstance(item, dict | list):
                if key == "history":
                    continue
                item = json.dumps(item, ensure_ascii=False)
            table.add_row(key, styled(item))
        self.console.print(table)
        history = value.get("history")
        if isinstance(history, list) and history:
            self.history(history)

    def history(self, steps: list[dict[str, Any]]) -> None:
        table = Table(title="history", title_justify="left")
        for column in ("at", "status", "detail"):
            table.add_column(column, overflow="fold")
        for step in steps:
            why = step.get("detail") or step.get("reason") or ""
            table.add_row(str(step.get("at", "")), styled(step.get("status")), str(why))
        self.console.print(table)

    def deliveries_table(self) -> Table:
        table = Table()
        for column in ("id", "created", "destination", "status", "recipient", "error", "body"):
            table.add_column(column, no_wrap=column != "body", overflow="ellipsis")
        return table

    def delivery_row(self, table: Table, item: dict[str, Any]) -> None:
        body = item.get("body") or ""
        table.add_row(
            item["id"],
            str(item.get("created_at") or ""),
            str(item.get("destination") or ""),
            styled(item.get("status")),
            str(item.get("recipient") or ""),
            str(item.get("error_code") or ""),
            body if len(body) <= _BODY_WIDTH else body[: _BODY_WIDTH - 1] + "…",
        )

    def delivery_line(self, item: dict[str, Any]) -> None:
        """One delivery as one line (`tail`)."""
        if self.as_json:
            emit(item)
            return
        line = Text.assemble(
            (str(item.get("created_at") or ""), "dim"),
            " ",
            item["id"],
            " ",
            (str(item.get("destination") or ""), "bold"),
            " ",
            styled(item.get("status")),
            " ",
            str(item.get("recipient") or ""),
            " ",
            (str(item.get("detail") or item.get("error_message") or ""), "dim"),
        )
        self.console.print(line)

    @contextlib.contextmanager
    def progress(self, what: str, total: int) -> Iterator[Progress]:
        """A progress bar on stderr when it is a terminal (invisible otherwise)."""
        bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            console=self.errors,
            transient=True,
            disable=not self.errors.is_terminal,
        )
        with bar:
            yield bar

    def note(self, message: str) -> None:
        self.errors.print(f"smsdest: {message}", style="dim", highlight=False)
