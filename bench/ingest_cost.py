"""Instructions per ingest request, counted by callgrind: deterministic on a loaded machine,
unlike any timing. The app runs in process (ASGI, its real lifespan, a Redis you start)
with the benchmark's destination, every event to another number; only the measured
requests are counted (a warm-up and start-up are not).

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m bench.ingest_cost REDIS_PORT single 600
    grep -h ^totals: /tmp/cg.out.1     # instructions for the 600 requests

`batch` sends 100-event requests (try 10). Needs gcc and valgrind's headers (the start
and stop are valgrind client requests, from a small C helper compiled on the fly). The
counts hold under load, but a machine so loaded that valgrind's process waits over 5 s
for a pipeline's answer fails it (503, the store's timeout): run it again later.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson

from bench.destinations import write_destinations
from bench.payloads import posthog_webhook, uuids

_HELPER = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("measured"); }
"""
TOKEN = "bench-ingest-token-0123456789"


def _helper(folder: Path) -> ctypes.CDLL:
    source, library = folder / "cg.c", folder / "cg.so"
    source.write_text(_HELPER)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(str(library))


def main() -> None:
    """Run the warm-up, then the counted requests, 32 at a time (batches: 16)."""
    port, mode, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    folder = Path(tempfile.mkdtemp(prefix="smsdest-cost-"))
    single, _ = write_destinations(folder)
    os.environ.update(
        SMS_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        SMS_INGEST_TOKEN=TOKEN,
        SMS_ADMIN_TOKEN="bench-admin-token-0123456789",
        SMS_DESTINATIONS_FILE=str(single),
        SMS_TWILIO_BASE_URL="http://127.0.0.1:9",
        TWILIO_ACCOUNT_SID="AC" + "be" * 16,
        TWILIO_AUTH_TOKEN="bench-auth-0123456789",
        SMS_LOG_LEVEL=os.environ.get("SMS_LOG_LEVEL", "WARNING"),  # as bench/procs.py
        SMS_RECONCILE_INTERVAL="0",
    )
    from app.logs import configure_logging
    from app.main import create_app
    from app.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, "json")
    app = create_app(settings, run_worker=False)
    helper = _helper(folder)
    ids, numbers = uuids(), iter(range(10**9))
    per_request = 1 if mode == "single" else 100

    async def post() -> None:
        events = [posthog_webhook(next(ids), next(numbers)) for _ in range(per_request)]
        body = orjson.dumps(events[0] if per_request == 1 else events)
        headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
        headers += [(b"authorization", f"Bearer {TOKEN}".encode())]
        headers += [(b"content-length", str(len(body)).encode())]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "query_string": b"",
            "root_path": "",
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 5555),
            "headers": headers,
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            return {}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [202]:
            raise RuntimeError(f"answered {statuses}")

    async def requests(n: int) -> None:
        pending = iter(range(n))

        async def client() -> None:
            for _ in pending:
                await post()

        await asyncio.gather(*(client() for _ in range(32 if per_request == 1 else 16)))

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await requests(100 if per_request == 1 else 20)  # warm-up
            helper.cg_start()
            await requests(count)
            helper.cg_stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
