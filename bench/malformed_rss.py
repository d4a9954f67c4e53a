"""RSS of a service fed the same batch of malformed requests, round after round.

An outside fuzzing run saw the process grow from 67 to 139 MB this way. This starts its own
Redis and `smsdest serve --no-worker` on loopback, sends ROUNDS × the batch below (invalid
JSON, 100,000-key objects, bad numbers, hostile paths and cursors, oversized unsigned
webhooks) and prints the service's RSS after each round:

    python -m bench.malformed_rss [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx
import orjson

from bench.procs import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    Processes,
    service_env,
    start_redis,
    start_service,
    wait_ready,
)

SID = "SM" + "0" * 32
DESTINATIONS = """
destinations:
  - id: welcome
    body: "Hi {{ person.properties.name }}"
    from: "+15005550006"
"""


def rss_mb(pid: int) -> float:
    """Resident set size of `pid`, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        n, r = divmod(n, 36)
        text = digits[r] + text
        if n == 0:
            return text


def malformed_batch() -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body) of every request in one round."""
    wide = orjson.dumps({_base36(i): 0 for i in range(100_000)})  # 100,000 keys, 0.9 MB
    ingest = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    bad_events = orjson.dumps([{"event": {"uuid": i, "event": None}} for i in range(1000)])
    message = {"body": "x", "from": "+15005550006"}
    return [
        ("POST", "/v1/events", ingest, b"{not json"),
        ("POST", "/v1/events", ingest, wide),
        ("POST", "/v1/events", ingest, bad_events),
        ("POST", "/v1/messages", admin, wide),
        ("POST", "/v1/messages", admin, b"\xff\xfe{}"),
        ("POST", "/v1/messages", admin, orjson.dumps({**message, "to": "+14155550077\n"})),
        ("POST", "/v1/messages", admin, orjson.dumps({**message, "to": "x" * 100_000})),
        ("GET", f"/v1/messages/{SID}%0A", admin, b""),
        ("POST", f"/v1/messages/{SID}%0A/cancel", admin, b""),
        ("GET", "/v1/suppressions?cursor=" + "9" * 30, admin, b""),
        ("GET", "/v1/deliveries?status=" + "x" * 10_000, admin, b""),
        ("POST", "/v1/destinations/welcome/test", admin, wide),
        ("POST", "/v1/twilio/inbound", {}, b"Body=" + b"x" * 1_000_000),
        ("PATCH", "/v1/events", ingest, b"{}"),
        ("GET", "/nowhere/" + "x" * 1000, {}, b""),
    ]


async def one_round(
    client: httpx.AsyncClient, batch: list[tuple[str, str, dict[str, str], bytes]]
) -> dict[int, int]:
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(4)

    async def send(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        async with gate:
            response = await client.request(method, path, headers=headers, content=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    await asyncio.gather(*(send(*request) for request in batch))
    return statuses


async def measure(url: str, pid: int, rounds: int) -> list[float]:
    batch = malformed_batch()
    sizes = [rss_mb(pid)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for n in range(rounds):
            statuses = await one_round(client, batch)
            sizes.append(rss_mb(pid))
            answers = dict(sorted(statuses.items()))
            print(f"round {n + 1:2}: RSS {sizes[-1]:6.1f} MB  answers {answers}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Processes(Path(tmp) / "logs") as procs:
        destinations = Path(tmp) / "destinations.yaml"
        destinations.write_text(DESTINATIONS)
        redis_proc, _ = start_redis(procs)
        env = service_env(redis_proc.port, destinations, "http://127.0.0.1:9")
        service = start_service(procs, "service", env)
        wait_ready(service)
        print(f"idle: RSS {rss_mb(service.pid):.1f} MB")
        sizes = asyncio.run(measure(service.url, service.pid, args.rounds))
        print(f"after round 1: {sizes[1]:.1f} MB; after round {args.rounds}: {sizes[-1]:.1f} MB")


if __name__ == "__main__":
    main()
