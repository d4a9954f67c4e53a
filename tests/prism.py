"""Stoplight Prism serving Twilio's OpenAPI description as a validating mock Twilio.

Install once with `make prism` (`npm install --prefix .tools @stoplight/prism-cli@5`).
Prism validates each request (path parameters, Basic auth, form fields' types, patterns,
enums and `uri` / `date-time` formats) and answers 422 (application/problem+json, with a
`validation` list) or 401, else Twilio's own example for the operation (the same
example whatever was sent; it does not echo the request).

    process = start_prism(port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=process)
        ...
    finally:
        stop_prism(process)
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PRISM = REPO / ".tools" / "node_modules" / ".bin" / "prism"
SPEC = REPO.parent / "shared" / "twilio" / "twilio_api_v2010.json"


def prism_available() -> bool:
    """True when both the Prism executable and Twilio's description are present."""
    return PRISM.is_file() and SPEC.is_file()


def start_prism(port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `prism mock` on 127.0.0.1:`port` (its output goes to `log`, else nowhere)."""
    if not prism_available():
        raise FileNotFoundError(f"Prism or the spec is missing ({PRISM}, {SPEC}); make prism")
    command = [str(PRISM), "mock", "-p", str(port), "--host", "127.0.0.1", str(SPEC)]
    if log is None:
        return subprocess.Popen(
            command,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    with log.open("wb") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )


def wait_ready(
    url: str, timeout: float = 60, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until Prism answers HTTP at `url` (any status: `/` itself is a 404).

    Raises RuntimeError at once if `process` exits, TimeoutError after `timeout` seconds.
    Prism 5.14 with the 1.9 MB Twilio description answered after 2.6-4.9 s here.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Prism exited with status {process.returncode} before answering")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prism did not answer at {url} within {timeout} s")
        time.sleep(0.2)


def stop_prism(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate Prism (SIGTERM, then SIGKILL if it lingers) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
