"""`smsdest`: serve the API (with a worker), run extra workers, check a destinations file,
and every operator operation (messages, suppressions, raw Twilio requests) as a command.

Operations print JSON on stdout (one object, or JSON Lines for lists; the operator
commands `deliveries`, `test` and `reload` print tables unless `--json`) and errors as
`smsdest: <message>` on stderr: exit 2 for a bad command line, bad input or bad settings,
1 when Twilio (or Redis, or the API) fails; 3, 4, 5: see app/cli/access.py.
"""

from __future__ import annotations

import argparse
import os
import sys

from app.cli.delivery_commands import add_delivery_commands
from app.cli.destination_commands import add_destination_commands
from app.cli.message_commands import add_message_commands
from app.cli.plumbing import CliError
from app.cli.serve_commands import add_serve_commands
from app.cli.suppression_commands import add_suppression_commands
from app.cli.twilio_commands import add_twilio_commands
from app.destinations import ConfigError
from app.settings import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsdest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_commands(commands)
    add_message_commands(commands)
    add_suppression_commands(commands)
    add_twilio_commands(commands)
    add_delivery_commands(commands)
    add_destination_commands(commands)
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
