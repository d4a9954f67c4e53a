"""The fault-injection rig: the service run the way users run it, and the faults done to it.

`smsdest serve --no-worker` and `smsdest worker` processes (bench/procs.py starts and always
stops them) against a redis-server of the rig's own on a free port (with an append-only
file when a row restarts it) and the HTTP fake Twilio (tests/fake_twilio.py) in this
process. Events go in over HTTP as an analytics tool sends them (retried on 503 until
answered 202); what comes out is counted at the fake Twilio, per (To, Body): every event
answered 202 for sending must be texted exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from bench.procs import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    Proc,
    Processes,
    error_summary,
    service_env,
    start_redis,
    start_service,
    start_worker,
    wait_ready,
)
from tests.fake_twilio import FakeTwilio

EVENT = "fault"
SENDER = "+15005550006"
# Statuses after which the worker is done with a delivery (Twilio's later reports aside).
FINAL = frozenset(
    {"sent", "failed", "skipped", "mocked", "delivered", "undelivered", "read", "canceled"}
)
# A record that says its text went out (Twilio's later reports included).
SENT = frozenset({"sent", "delivered", "read"})


def phone(n: int) -> str:
    """Recipient number `n` (0-999), valid for libphonenumber."""
    return f"+1415555{n:04d}"


def destination(throttle_s: int | None = None) -> dict[str, Any]:
    """The one destination of a run: every `fault` event texted to its person, the body
    naming the event's number, so that each text at Twilio says which event it was."""
    found: dict[str, Any] = {
        "id": "faults",
        "events": [EVENT],
        "to": "{{ person.properties.phone }}",
        "body": "fault {{ event.properties.n }}",
        "from": SENDER,
    }
    if throttle_s is not None:
        found["throttle"] = {"window": f"{throttle_s}s"}
    return found


def event(n: int, recipient: int | None = None) -> dict[str, Any]:
    """PostHog's webhook body for event number `n`, to recipient `recipient` (default n)."""
    return {
        "event": {
            "uuid": str(uuid.uuid4()),
            "event": EVENT,
            "distinct_id": f"user-{n}",
            "properties": {"n": n},
        },
        "person": {"properties": {"phone": phone(n if recipient is None else recipient)}},
    }


def text_of(payload: dict[str, Any]) -> tuple[str, str]:
    """The (To, Body) the event should be texted as."""
    return payload["person"]["properties"]["phone"], f"fault {payload['event']['properties']['n']}"


@dataclass(frozen=True)
class Accepted:
    """An event answered 202, with its decision for the destination."""

    text: tuple[str, str]
    decision: str
    delivery_id: str


@dataclass(frozen=True)
class Tally:
    """What Twilio received against what was answered 202 (decision queued)."""

    sends: int  # events answered 202 to be texted
    texts: int  # messages Twilio created
    duplicates: int  # texts beyond the first for one (To, Body)
    lost: int  # events answered 202 for sending that Twilio never got


# Records a row's counts for the run's summary: (row, tally, what else it counted).
Measure = Callable[[str, Tally, str], None]


@dataclass
class Rig:
    """One run: Redis, the fake Twilio, the API and its workers. Use `Rig.running(...)`."""

    procs: Processes
    fake: FakeTwilio
    env: dict[str, str]
    aof_dir: Path | None
    redis_proc: Proc = field(init=False)
    redis: redis.Redis = field(init=False)
    api: Proc = field(init=False)
    workers: list[Proc] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    refused: int = 0  # ingest answers 503 (each retried)
    refused_without_retry_after: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        folder: Path,
        *,
        workers: int = 1,
        throttle_s: int | None = None,
        aof: bool = False,
        settings: Mapping[str, str] | None = None,
        processes: Processes | None = None,
        redis_url: str | None = None,
    ) -> Iterator[Rig]:
        """Start everything (`settings`: SMS_* variables, named without the prefix, for
        every process); stop everything on the way out, whatever happened. `redis_url`:
        a Redis the caller started (in `processes`) instead of the rig's own."""
        destinations = folder / "destinations.yaml"
        destinations.write_text(yaml.safe_dump({"destinations": [destination(throttle_s)]}))
        aof_dir = folder / "redis" if aof else None
        if aof_dir:
            aof_dir.mkdir()
        own = Processes(folder / "logs") if processes is None else contextlib.nullcontext(processes)
        with own as procs, FakeTwilio() as fake:
            # Twilio sends what it created (status sent, DateSent set) at once.
            fake.send_after = 0.0
            rig = cls(procs, fake, {}, aof_dir)
            if redis_url is None:
                rig.redis_proc, rig.redis = start_redis(procs, aof_dir=aof_dir)
                rig.env = service_env(rig.redis_proc.port, destinations, fake.base_url)
            else:
                rig.env = {**service_env(0, destinations, fake.base_url)}
                rig.env["SMS_REDIS_URL"] = redis_url
            rig.env.update(_variables(settings or {}))
            rig.api = start_service(procs, "api", rig.env)
            wait_ready(rig.api)
            for _ in range(workers):
                rig.start_worker()
            try:
                yield rig
            finally:
                if redis_url is None:
                    rig.redis.close()

    # --- the faults ----------------------------------------------------------------------

    def start_worker(self, settings: Mapping[str, str] | None = None) -> Proc:
        """One more `smsdest worker` (`settings` as for `running`, for this one only),
        returned once it is consuming: it says so at INFO, and on a loaded machine a
        worker can take seconds to start."""
        name = f"worker-{len(self.workers) + 1}"
        env = {**self.env, "SMS_LOG_LEVEL": "INFO", **_variables(settings or {})}
        worker = start_worker(self.procs, name, env)
        self.workers.append(worker)
        log, deadline = self.procs.log_dir / f"{name}.log", time.monotonic() + 30
        while "worker started" not in log.read_text(errors="replace"):
            if worker.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: see {log}")
            time.sleep(0.05)
        return worker

    @staticmethod
    def kill(proc: Proc) -> None:
        """SIGKILL: no handler runs, nothing is flushed or acknowledged."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)

    def stop_redis(self, how: str) -> None:
        """Take Redis away: `kill` (SIGKILL) or `shutdown` (its SHUTDOWN command)."""
        if how == "kill":
            self.kill(self.redis_proc)
        else:
            with contextlib.suppress(redis.ConnectionError):
                self.redis.shutdown()
            self.redis_proc.popen.wait(10)
        self.redis.close()

    def restart_redis(self) -> None:
        """The same Redis again, on the same port, from its append-only file."""
        self.redis_proc, self.redis = start_redis(
            self.procs, port=self.redis_proc.port, aof_dir=self.aof_dir
        )

    # --- events in ---------------------------------------------------------------------

    def post(self, payloads: list[dict[str, Any]], give_up_s: float = 60.0) -> list[Accepted]:
        """POST events as one request until it is answered 202 (503 and connection errors
        are retried, as an analytics tool does); record and return what was accepted."""
        deadline = time.monotonic() + give_up_s
        headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
        while True:
            try:
                response = httpx.post(
                    f"{self.api.url}/v1/events", json=payloads, headers=headers, timeout=10
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 202:
                break
            if response is not None and response.status_code != 503:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text}")
            if response is not None:
                with self._lock:
                    self.refused += 1
                    self.refused_without_retry_after += "retry-after" not in response.headers
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not come back within {give_up_s} s")
            time.sleep(0.2)
        results = response.json()["results"]
        accepted = [
            Accepted(text_of(payload), d["decision"], d["delivery_id"])
            for payload, result in zip(payloads, results, strict=True)
            for d in result["deliveries"]
        ]
        with self._lock:
            self.accepted.extend(accepted)
        return accepted

    def post_steadily(self, payloads: list[dict[str, Any]], rate: float, senders: int = 4) -> None:
        """POST events one per request at about `rate` per second, from `senders` threads
        (each retrying its event until answered 202), and wait until all are accepted."""
        start = time.monotonic()

        def send(index: int) -> None:
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
            self.post([payloads[index]])

        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(send, range(len(payloads))))

    # --- what came out -----------------------------------------------------------------

    def wait_for_requests(self, n: int, timeout: float = 20.0) -> None:
        """Until Twilio has received `n` message-create requests."""
        try:
            self.fake.wait_for_requests(n, timeout)
        except AssertionError as exc:  # the rig failing, not the row's assertion
            raise RuntimeError(str(exc)) from None

    def records(self) -> dict[str, dict[str, Any]]:
        """Every delivery in the log, by id (via the admin API, as an operator reads it)."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        while True:
            params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = self.api.client.get("/v1/deliveries", params=params, headers=headers)
            response.raise_for_status()
            page = response.json()
            found.update({item["id"]: item for item in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                return found

    def settle(self, timeout: float = 45.0) -> dict[str, dict[str, Any]]:
        """Wait until every delivery accepted for sending is final (or gone from the log)
        and Twilio has received nothing new for a moment; return the last records."""
        deadline = time.monotonic() + timeout
        waiting = {a.delivery_id for a in self.sending()}
        seen = -1
        records: dict[str, dict[str, Any]] | None = None
        while True:
            with contextlib.suppress(httpx.HTTPError):
                records = self.records()
            requests = len(self.fake.message_requests)
            if records is not None and requests == seen:
                # A delivery no longer in the log is settled too: nothing will send it.
                busy = [i for i in waiting if i in records and records[i]["status"] not in FINAL]
                if not busy:
                    return records
            if time.monotonic() > deadline:
                return records or {}
            seen = requests
            time.sleep(0.5)

    def recorded_wrong(self, records: dict[str, dict[str, Any]]) -> int:
        """Deliveries Twilio texted whose record does not say so: not `sent` with the SID of
        a message Twilio created for them (one never texted is counted by `tally` as lost)."""
        sids: dict[tuple[str, str], set[str]] = {}
        for message in self.texts():
            sids.setdefault((message["to"], message["body"]), set()).add(message["sid"])
        wrong = 0
        for accepted in self.sending():
            record = records.get(accepted.delivery_id, {})
            created = sids.get(accepted.text, set())
            sent = record.get("status") in SENT and record.get("twilio_sid") in created
            wrong += bool(created) and not sent
        return wrong

    def sending(self) -> list[Accepted]:
        """Accepted events that are to be texted (queued, or duplicates of those)."""
        with self._lock:
            return [a for a in self.accepted if a.decision in ("queued", "duplicate")]

    def texts(self) -> list[dict[str, Any]]:
        """Every message Twilio created."""
        return list(dict(self.fake.messages).values())

    def tally(self) -> Tally:
        """Duplicates and losses, counted at Twilio."""
        texts = Counter((m["to"], m["body"]) for m in self.texts())
        expected = {a.text for a in self.sending()}
        return Tally(
            sends=len(expected),
            texts=texts.total(),
            duplicates=sum(count - 1 for count in texts.values()),
            lost=sum(1 for text in expected if not texts[text]),
        )

    def errors(self) -> str:
        """The processes' logged errors, one line each (for failure messages)."""
        return "; ".join(error_summary(self.procs.log_dir)) or "no errors logged"


def _variables(settings: Mapping[str, str]) -> dict[str, str]:
    return {f"SMS_{name.upper()}": value for name, value in settings.items()}


def gaps_closer_than(fake: FakeTwilio, window_s: float) -> int:
    """Consecutive texts to one recipient closer together than `window_s`. A text's time
    is when its (To, Body) last reached Twilio: earlier tries were answered with errors."""
    sent_at = {(r.form["To"], r.form.get("Body")): r.received_at for r in fake.message_requests}
    by_recipient: dict[str, list[float]] = {}
    for (to, _body), at in sent_at.items():
        by_recipient.setdefault(to, []).append(at)
    gaps = (b - a for times in by_recipient.values() for a, b in pairwise(sorted(times)))
    return sum(1 for gap in gaps if gap < window_s)
