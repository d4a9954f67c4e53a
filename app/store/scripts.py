"""The store's Lua scripts, kept in `.lua` files beside their callers and read once, when
the calling module is imported."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent


def lua(*files: str, prelude: str = "") -> str:
    """One script's source: `prelude` (Lua generated from Python data), its libraries'
    files, its own file last."""
    return "\n".join([prelude, *((_HERE / name).read_text() for name in files)])
