"""The reliability rows' measured counts, printed as one table at the end of the run."""

from __future__ import annotations

import pytest

from tests.reliability.rig import Measure, Tally

_MEASURED: list[tuple[str, Tally, str]] = []


@pytest.fixture
def measured() -> Measure:
    """Record a row's counts (`extra`: what else the row counts, in words)."""

    def record(row: str, tally: Tally, extra: str = "") -> None:
        _MEASURED.append((row, tally, extra))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _MEASURED:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: counted at the fake Twilio (issue 12)")
    write("| fault | sends | texts | duplicates | lost | also |")
    write("|---|---:|---:|---:|---:|---|")
    for row, t, extra in _MEASURED:
        write(f"| {row} | {t.sends} | {t.texts} | {t.duplicates} | {t.lost} | {extra} |")
