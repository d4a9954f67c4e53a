from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.destinations import ConfigError, load_destinations
from app.pipeline.events import Event, Person
from app.pipeline.render import TemplateRenderer
from tests.conftest import REPO, write_destinations

RENDERER = TemplateRenderer(REPO / "templates")


def one_destination(extra: str = "", throttle: str = "") -> str:
    return f"""
destinations:
  - id: alerts
    body: "hello"
    from: "+15005550006"
{extra}{throttle}"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    return load_destinations(write_destinations(tmp_path, text), RENDERER)


def test_example_file_loads() -> None:
    destinations = load_destinations(REPO / "destinations.example.yaml", RENDERER)
    assert len(destinations) == 2


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        ("1", 1),
        ("31536000", 31_536_000),
        ("1y", 31_536_000),
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604_800),
    ],
)
def test_throttle_windows_accepted(tmp_path: Path, window: str, seconds: int) -> None:
    destinations = load(tmp_path, one_destination(throttle=f"    throttle: {{window: {window}}}\n"))
    config = destinations.get("alerts").config  # type: ignore[union-attr]
    assert config.throttle is not None and config.throttle.window == seconds


@pytest.mark.parametrize("window", ["0", "31536001", "2y", "-5", "soon"])
def test_throttle_windows_refused(tmp_path: Path, window: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, one_destination(throttle=f"    throttle: {{window: {window}}}\n"))
    message = str(caught.value)
    assert "destinations.yaml" in message
    assert "destination 'alerts'" in message
    assert "throttle.window" in message


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (
            "    messaging_service_sid: MG00000000000000000000000000000000\n",
            "exactly one of 'from'",
        ),
        ("    template: missing.txt\n", "exactly one of 'body'"),
        ("    mode: loud\n", "mode"),
        ("    colour: red\n", "colour"),
        ("    filters: [{key: a, operator: regex, value: '('}]\n", "filters.0"),
        ("    on_overflow: wrap\n", "on_overflow"),
    ],
)
def test_errors_name_destination_and_field(tmp_path: Path, extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, one_destination(extra))
    assert "destination 'alerts'" in str(caught.value)
    assert field in str(caught.value)


def test_bad_sender_formats(tmp_path: Path) -> None:
    text = one_destination().replace('"+15005550006"', '"5005550006"')
    with pytest.raises(ConfigError, match=r"from: .* is not in international format"):
        load(tmp_path, text)
    # Written any way libphonenumber reads, the sender is kept as plain ASCII E.164.
    wide = one_destination().replace('"+15005550006"', '"＋１ ５００ ５５５ ０００６\\n"')
    [config] = load(tmp_path, wide).configs()
    assert config.from_number == "+15005550006"
    text = one_destination().replace('from: "+15005550006"', "messaging_service_sid: MG12")
    with pytest.raises(ConfigError, match="messaging_service_sid"):
        load(tmp_path, text)


def test_template_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="destination 'alerts': body"):
        load(tmp_path, one_destination().replace('"hello"', '"{{ oops"'))
    with pytest.raises(ConfigError, match="destination 'alerts': template"):
        load(tmp_path, one_destination().replace('body: "hello"', "template: nope.txt"))
    with pytest.raises(ConfigError, match="destination 'alerts': to"):
        load(tmp_path, one_destination('    to: "{% if %}"\n'))


def test_duplicate_ids_and_missing_file(tmp_path: Path) -> None:
    text = one_destination() + one_destination().split("destinations:\n")[1]
    with pytest.raises(ConfigError, match="duplicate id"):
        load(tmp_path, text)
    with pytest.raises(ConfigError, match="file not found"):
        load_destinations(tmp_path / "nope.yaml", RENDERER)


def named(name: str) -> Event:
    return Event(
        name=name, uuid=None, distinct_id=None, properties={}, timestamp=None, person=Person()
    )


def test_destinations_indexed_by_event(tmp_path: Path) -> None:
    destinations = load(
        tmp_path,
        """
destinations:
  - {id: a, events: [x], body: a, from: "+15005550006"}
  - {id: b, body: b, from: "+15005550006"}
  - {id: c, events: [x, y], body: c, from: "+15005550006"}
  - {id: d, events: [x], enabled: false, body: d, from: "+15005550006"}
""",
    )
    assert [d.id for d in destinations.candidates(named("x"))] == ["a", "b", "c"]
    assert [d.id for d in destinations.candidates(named("y"))] == ["b", "c"]
    assert [d.id for d in destinations.candidates(named("other"))] == ["b"]
    assert destinations.get("d") is not None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_check_config_command(tmp_path: Path) -> None:
    good = run_cli("check-config", "destinations.example.yaml")
    assert good.returncode == 0, good.stderr
    assert "OK, 2 destination(s)" in good.stdout
    bad = write_destinations(tmp_path, one_destination(throttle="    throttle: {window: 0}\n"))
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2
    assert "destination 'alerts'" in result.stderr and "throttle.window" in result.stderr
