"""What sender pacing costs a fast sender: one worker drains N queued messages to the fast
fake Twilio (0 ms), unpaced and paced (the sender declared at 10,000 segments/s, so pacing
never makes it wait), A/B interleaved in one process so that both see the same machine.

``python -m bench.pacing_cost [N] [ROUNDS]`` prints, per variant, the median rate, the
worker's CPU per message, and the pace script calls per message.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.metrics import Metrics
from app.pipeline.dispatch import RetryPolicy
from app.services import build_http_client
from app.services.pacing import SenderPacer
from app.services.worker import SendWorker
from app.settings import Settings
from app.store.connection import connect
from app.store.records import NewDelivery
from app.store.storage import Store
from app.twilio.provider import build_twilio_provider
from bench.procs import Processes, start_module, start_redis, wait_ready

SENDER = "+15005550006"


def _deliveries(n: int, round_no: int) -> list[NewDelivery]:
    return [
        NewDelivery(
            destination_id="bench",
            mode="live",
            event_identity=f"r{round_no}-{i}",
            event_uuid=f"r{round_no}-{i}",
            event_name="bench",
            recipient=f"+1415555{i % 10000:04d}",
            body=f"Hi there, welcome aboard! Event r{round_no}-{i}",
            encoding="GSM-7",
            segments=1,
            from_number=SENDER,
        )
        for i in range(n)
    ]


async def _drain(
    settings: Settings, n: int, round_no: int, paced: bool
) -> tuple[float, float, int]:
    redis = connect(str(settings.redis_url))
    store = Store(redis, 86_400, 86_400)
    calls = 0
    async with build_http_client(settings) as http:
        provider = build_twilio_provider(settings, http)
        admit = _deliveries(n, round_no)
        for start in range(0, n, 500):
            await store.deliveries.admit(admit[start : start + 500])
        pacer = None
        if paced:
            await store.pacing.publish({SENDER: 10_000.0})
            pacer = SenderPacer(store.pacing, Metrics())
            reserve = store.pacing.reserve

            async def counted(*args: object, **kwargs: object) -> object:
                nonlocal calls
                calls += 1
                return await reserve(*args, **kwargs)  # type: ignore[arg-type]

            store.pacing.reserve = counted  # type: ignore[method-assign,assignment]
        worker = SendWorker(
            store.send_queue("bench"),
            store.deliveries,
            provider,
            RetryPolicy(5, 1.0, 300.0),
            settings.worker_concurrency,
            settings.reclaim_idle,
            Metrics(),
            pacer=pacer,
            pace_hold_s=settings.pacing_hold_s,
            pauses=store.pauses,
        )
        await store.send_queue("bench").ensure_group()
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(worker.run())
        while await redis.xlen("smsdest:sends") > 0:  # noqa: ASYNC110 (polling Redis)
            await asyncio.sleep(0.01)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        worker.stop()
        await task
    await redis.aclose()
    return n / wall, cpu / n * 1e6, calls


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with Processes(Path(tempfile.mkdtemp(prefix="pacing-cost-"))) as procs:
        redis_proc, client = start_redis(procs)
        fake = start_module(procs, "fake-twilio", "bench.fake_twilio")
        wait_ready(fake, "/stats")
        settings = Settings(
            _env_file=None,
            redis_url=f"redis://127.0.0.1:{redis_proc.port}/0",
            twilio_base_url=fake.url,
            TWILIO_ACCOUNT_SID="AC" + "a1" * 16,
            TWILIO_AUTH_TOKEN="bench-token",
        )
        results: dict[str, list[tuple[float, float, int]]] = {"unpaced": [], "paced": []}
        for round_no in range(rounds):
            for name in ("unpaced", "paced") if round_no % 2 == 0 else ("paced", "unpaced"):
                client.flushdb()
                run = asyncio.run(_drain(settings, n, round_no, name == "paced"))
                results[name].append(run)
                print(f"round {round_no} {name}: {run[0]:,.0f} msg/s, {run[1]:.0f} µs CPU/msg")
        for name, runs in results.items():
            rate = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            calls = statistics.median(r[2] for r in runs) / n
            print(f"{name}: median {rate:,.0f} msg/s, {cpu:.0f} µs CPU/msg, {calls:.4f} pace/msg")


if __name__ == "__main__":
    main()
