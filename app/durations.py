"""Durations as operators write them: ``90``, ``30s``, ``15m``, ``2h``, ``7d``, ``1y``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy]?)\s*$")


def parse_duration(value: object) -> int:
    """Return whole seconds for an int or a string like ``15m``; ``1y`` is 365 days."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, 30s, 15m, 2h, 7d or 1y")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return int(number) * _UNIT_SECONDS[unit or "s"]
    raise ValueError(f"expected a duration such as 30, 30s, 15m, 2h, 7d or 1y, got {value!r}")


Seconds = Annotated[int, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts ``parse_duration`` input, stores whole seconds."""


def format_duration(seconds: int) -> str:
    """Seconds in the unit they were most likely written in: `1h`, `90s`, `7d`."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
