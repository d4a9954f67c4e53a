"""The result table: rows with goals, the machine and versions, JSON and Markdown output."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.wrk import wrk_version

PACKAGES = (
    "fastapi",
    "uvicorn",
    "redis",
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "starlette",
    "pydantic",
    "orjson",
    "uvloop",
    "httptools",
)


@dataclass
class Row:
    """One figure: the median of its runs against a goal."""

    figure: str
    name: str
    measured: float
    unit: str
    goal: float
    higher_is_better: bool
    runs: list[float] = field(default_factory=list)
    detail: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    @property
    def goal_text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {_number(self.goal)}"

    @property
    def measured_text(self) -> str:
        return f"{_number(self.measured)} {self.unit}".strip()

    def to_json(self) -> dict[str, Any]:
        extra = {"measured_text": self.measured_text, "goal_text": self.goal_text}
        return {**asdict(self), **extra, "passed": self.passed}


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    lines = [
        "| # | figure | measured | goal | result |",
        "|---|---|---:|---:|---|",
    ]
    for row in rows:
        verdict = "PASS" if row.passed else "FAIL"
        cells = [row.figure, row.name, row.measured_text, row.goal_text, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and kernel of this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": len(re.findall(r"^processor\s*:", cpuinfo, re.MULTILINE)),
        "ram_gib": round(int(total_kb.group(1)) / 1024**2, 1) if total_kb else None,
        "kernel": platform.release(),
    }


def versions() -> dict[str, str]:
    """python, redis-server, wrk, the Python packages the service runs on, and a digest
    of app/ (the code measured changes between runs; this tells runs apart)."""
    found = {"app (sha256 of app/**/*.py)": _app_digest()}
    found |= {"python": platform.python_version(), "redis-server": _redis_version()}
    found["wrk"] = wrk_version()
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def _app_digest() -> str:
    digest = hashlib.sha256()
    app = Path(__file__).resolve().parent.parent / "app"
    for path in sorted(app.rglob("*.py")):
        digest.update(str(path.relative_to(app)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "absent"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5)
    version = re.search(r"v=(\S+)", out.stdout)
    return f"{version.group(1) if version else out.stdout.strip()} ({binary})"


def write(folder: Path, document: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write latest.json and latest.md into `folder`, and a copy of each named after the
    run (`<when>-<mode>.*`), so that a later run does not erase this one."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(document), indent=2, ensure_ascii=False, allow_nan=False)
    stamp = f"{document['when'].replace(':', '')}-{document['mode']}"
    for name in (stamp, "latest"):
        (folder / f"{name}.json").write_text(text + "\n")
        (folder / f"{name}.md").write_text(markdown)
    return folder / "latest.json", folder / "latest.md"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (measured_text keeps "∞")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def now_iso() -> str:
    """UTC now, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
