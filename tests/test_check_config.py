"""`smsdest check-config` and start-up: every problem of a destinations file at once, with lines."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.destinations import ConfigError, load_destinations
from app.pipeline.render import TemplateRenderer
from tests.conftest import REPO

RENDERER = TemplateRenderer(REPO / "templates")

# Five different problems, one of each kind, each on a line of its own.
FIVE_PROBLEMS = """\
destinations:
  - id: welcome
    body: "Hi {{ person.properties.name "
    from: "+15005550006"
    throttle: {window: 1d, scoop: global}
  - id: welcome
    body: hello
    from: "+15005550006"
  - id: report
    template: missing.txt
    messaging_service_sid: MG00000000000000000000000000000000
  - id: loud
    body: hello
    from: "+15005550006"
    mode: loud
"""

FIVE_EXPECTED = [
    ":3: destination 'welcome': body: line 1: unexpected end of template",
    ":5: destination 'welcome': throttle.scoop: unknown field (did you mean 'scope'?)",
    ":6: destination 'welcome': id: duplicate id (first on line 2)",
    ":10: destination 'report': template: file 'missing.txt' not found in "
    f"{(REPO / 'templates').resolve()} (SMS_TEMPLATES_DIR)",
    ":15: destination 'loud': mode: must be one of live, test, got 'loud'",
]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )


def write(tmp_path: Path, text: str, name: str = "destinations.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_destinations(path, RENDERER)
    return [problem.describe(path).removeprefix(str(path)) for problem in caught.value.problems]


def test_five_different_errors_reported_at_once_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_PROBLEMS)
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"smsdest: {path}: 5 problems"
    assert len(lines) == 6
    for line, expected in zip(lines[1:], FIVE_EXPECTED, strict=True):
        assert line.startswith(f"  {path}{expected}"), (line, expected)


def test_start_up_refuses_the_same_file_with_the_same_messages(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_PROBLEMS)
    checked = run_cli("check-config", str(path))
    served = run_cli(
        "serve",
        SMS_DESTINATIONS_FILE=str(path),
        SMS_INGEST_TOKEN="t" * 16,
        SMS_ADMIN_TOKEN="a" * 16,
        SMS_REDIS_URL="redis://127.0.0.1:1/0",  # never reached: the file is refused first
    )
    assert served.returncode == 2
    assert "Traceback" not in served.stderr
    assert served.stderr == checked.stderr


def test_no_internal_names_and_yaml_words(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        destinations:
          - id: a
            body: hi
            from: "+15005550006"
            throttle: 5
            filters: {key: plan}
          - just text
        """,
    )
    assert problems == [
        ":6: destination 'a': throttle: must be a mapping (key: value), got a number (5)",
        ":7: destination 'a': filters: must be a list, got a mapping",
        ":8: destination #2: must be a mapping (key: value), got text",
    ]
    for problem in problems:
        assert "Config" not in problem and "Filter" not in problem


def test_lines_point_at_the_field(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        destinations:
          - id: a
            body: hi
            from: "+15005550006"
            filters:
              - key: plan
                operator: exat
              - key: phone
                typ: person
            colour: red
          - id: "bad id!"
            to: "{% if %}"
            from: "+15005550006"
        """,
    )
    assert problems == [
        ":8: destination 'a': filters.0.operator: must be one of exact, is_not, icontains, "
        "not_icontains, regex, not_regex, gt, gte, lt, lte, is_set, is_not_set, got 'exat' "
        "(did you mean 'exact'?)",
        ":10: destination 'a': filters.1.typ: unknown field (did you mean 'type'?)",
        ":11: destination 'a': colour: unknown field (known fields: id, name, enabled, mode, "
        "events, filters, to, body, template, from, messaging_service_sid, throttle, "
        "on_overflow, delay, send_at, countries, validity, quiet_hours, channel, media_url, "
        "content_sid, content_variables, velocity, category, budget)",
        ":12: destination 'bad id!': id: must be 1-64 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit",
        ":12: destination 'bad id!': set exactly one of 'body' (inline template) or "
        "'template' (a file)",
        ":13: destination 'bad id!': to: line 1: Expected an expression, got 'end of statement "
        "block'",
    ]


def test_yaml_problems_have_lines(tmp_path: Path) -> None:
    [unclosed] = problems_of(tmp_path, "destinations:\n  - id: a\n    body: [unclosed\n")
    assert unclosed.startswith(":4: not valid YAML: while parsing a flow sequence ")
    twice = "destinations:\n  - id: a\n    body: one\n    body: two\n    mode: loud\n"
    assert problems_of(tmp_path, twice) == [
        ":2: destination 'a': set exactly one of 'from' or 'messaging_service_sid'",
        ":4: destination 'a': body: given twice (first on line 3)",
        ":5: destination 'a': mode: must be one of live, test, got 'loud'",
    ]
    date = "destinations:\n  - id: a\n    send_at: 2026-13-45\n"
    assert problems_of(tmp_path, date) == [
        ":3: not valid YAML: cannot read this value: month must be in 1..12"
    ]
    digits = "destinations:\n  - id: a\n    delay: " + "9" * 5000 + "\n"
    [huge] = problems_of(tmp_path, digits)
    assert huge.startswith(":3: not valid YAML: cannot read this value: Exceeds the limit")
    top = "destinations: []\ndestinations: []\n"
    assert problems_of(tmp_path, top) == [":2: destinations: given twice (first on line 1)"]
    assert problems_of(tmp_path, "- id: a\n") == [
        ":1: must be a mapping with a 'destinations' list, got a list"
    ]
    assert problems_of(tmp_path, "destination:\n  - id: a\n") == [
        ":1: destination: unknown field (did you mean 'destinations'?)"
    ]


def test_a_file_with_no_destinations_says_so(tmp_path: Path) -> None:
    for text in ("", "# nothing yet\n", "destinations: []\n", "destinations:\n"):
        result = run_cli("check-config", str(write(tmp_path, text)))
        assert result.returncode == 1, text
        assert result.stderr.strip().endswith("no destinations (list them under 'destinations:')")


def test_compiler_failures_are_reported_per_destination(tmp_path: Path) -> None:
    nested = "(" * 200 + "1" + ")" * 200
    path = write(
        tmp_path,
        f"""
        destinations:
          - id: deep
            body: "{{{{ {nested} }}}}"
            from: "+15005550006"
          - id: power
            body: "{{{{ 10**100000 }}}}"
            from: "+15005550006"
          - id: fine
            body: hello
            from: "+15005550006"
        """,
    )
    result = run_cli("check-config", str(path))
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    # Reported on its line, for its destination and field (the wording is the compiler's).
    deep = [line for line in result.stderr.splitlines() if "'deep'" in line]
    assert len(deep) == 1 and f"{path}:4: destination 'deep': body: " in deep[0]
    assert "Error" not in deep[0]  # words, not Python's class names
    # A huge constant is never folded at compile time: it is left to the render bounds.
    assert "'power'" not in result.stderr
    assert "'fine'" not in result.stderr


def test_template_files_resolve_against_the_templates_setting(tmp_path: Path) -> None:
    templates = tmp_path / "mine"
    templates.mkdir()
    (templates / "note.txt").write_text("Hello {{ person.properties.name }}\n")
    text = """
    destinations:
      - id: note
        template: note.txt
        from: "+15005550006"
    """
    path = write(tmp_path, text)
    ok = run_cli("check-config", str(path), SMS_TEMPLATES_DIR=str(templates))
    assert ok.returncode == 0, ok.stderr
    assert "OK, 1 destination(s)" in ok.stdout
    # The repository's templates/ has no note.txt: the message names the setting and where.
    missing = run_cli("check-config", str(path), SMS_TEMPLATES_DIR=str(REPO / "templates"))
    assert missing.returncode == 2
    assert f"not found in {REPO / 'templates'} (SMS_TEMPLATES_DIR)" in missing.stderr
    (templates / "folder").mkdir()
    folder = write(tmp_path, text.replace("note.txt", "folder"), "folder.yaml")
    directory = run_cli("check-config", str(folder), SMS_TEMPLATES_DIR=str(templates))
    assert f"file 'folder' is not a file in {templates} (SMS_TEMPLATES_DIR)" in directory.stderr
    outside = write(tmp_path, text.replace("note.txt", "../note.txt"), "outside.yaml")
    escape = run_cli("check-config", str(outside), SMS_TEMPLATES_DIR=str(templates))
    assert "must be a relative path inside" in escape.stderr
    nowhere = run_cli("check-config", str(path), SMS_TEMPLATES_DIR=str(tmp_path / "none"))
    assert f"templates directory {tmp_path / 'none'} does not exist (SMS_TEMPLATES_DIR)" in (
        nowhere.stderr
    )


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path, message in [
        (binary, "not a UTF-8 text file"),
        (tmp_path, "cannot read the file"),
        (tmp_path / "absent.yaml", "file not found (set SMS_DESTINATIONS_FILE)"),
    ]:
        result = run_cli("check-config", str(path))
        assert result.returncode == 2
        assert result.stderr == f"smsdest: {path}: {message}" + result.stderr.split(message)[1]
        assert "Traceback" not in result.stderr


def test_alias_bombs_are_refused_quickly(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(["x-defs:", *(f"  {level}" for level in levels), "destinations: *a8", ""])
    started = time.monotonic()
    problems = problems_of(tmp_path, text)
    assert time.monotonic() - started < 30  # 10**9 values would take hours
    assert problems == [": the file expands to over 1,000,000 values (YAML aliases): refused"]
