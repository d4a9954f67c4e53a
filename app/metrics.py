"""Prometheus metrics: what the hot paths count, and the text `GET /metrics` serves.

Counters and histograms live in the process that does the work (ingest, send worker) and
cost one dictionary lookup and one locked add each. Whatever Redis knows (queue depth, the
oldest waiting message, deliveries per waiting status) is read by the scrape itself
through the store (`QueueStats`), so it costs nothing between scrapes and is the same
whichever process is scraped.

Several processes: by default each process reports its own counters and Prometheus
scrapes each as a target (`sum()` in queries): `serve` on its API port, `smsdest worker` on
SMS_METRICS_PORT. That is Prometheus' own model, and it holds across hosts and containers.
When PROMETHEUS_MULTIPROC_DIR is set (an empty directory shared by the processes of one
host, emptied before they start), prometheus-client keeps every process's values in
memory-mapped files there, and any process's /metrics reports them summed, workers without
a port of their own included.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from app.pipeline.events import EventShape
    from app.store.queue_stats import QueueSnapshot

__all__ = ["CONTENT_TYPE", "Metrics"]

# Text format 0.0.4: every Prometheus-compatible scraper reads it (our names need nothing
# newer).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Twilio answers a create in ~100-500 ms; the tail matters up to the request deadline.
_SEND_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# 202 -> Twilio: milliseconds when idle, seconds to minutes under backlog.
_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


# No `*_created` series beside every counter and histogram: Prometheus does not use them
# from the text format, and they double the series count.
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, prometheus-client's own switch (read when it is imported)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """One process's metrics, in a registry of its own (built by `build_services`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir() is None:
            # Per-process facts (CPU, memory, GC): meaningless once summed across processes.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        registry = self.registry
        self._events = Counter(
            "smsdest_events_received",
            "Events accepted by POST /v1/events (and made by Twilio webhooks), by the shape "
            "they arrived in.",
            ["shape"],
            registry=registry,
        )
        self._decisions = Counter(
            "smsdest_decisions",
            "Admission decisions, by destination and decision (queued, throttled, duplicate…).",
            ["destination", "decision"],
            registry=registry,
        )
        self._sends = Counter(
            "smsdest_sends",
            "Send attempts by destination and the status they left the delivery in "
            "(sent, mocked, scheduled, retrying, unknown, failed, expired).",
            ["destination", "status"],
            registry=registry,
        )
        self._unknown = Counter(
            "smsdest_send_outcome_unknown",
            "Send attempts whose outcome is unknown (the connection failed after the request "
            "went out): recorded unknown and resolved by asking Twilio's message list.",
            ["destination"],
            registry=registry,
        )
        self._twilio = Counter(
            "smsdest_twilio_requests",
            "Message creates sent to Twilio, by HTTP status ('none': no answer) and Twilio "
            "error code ('' when none).",
            ["http_status", "error_code"],
            registry=registry,
        )
        self._send_seconds = Histogram(
            "smsdest_send_duration_seconds",
            "How long one message create took at Twilio (live sends).",
            buckets=_SEND_BUCKETS,
            registry=registry,
        )
        self._latency = Histogram(
            "smsdest_event_to_send_seconds",
            "From the event's admission (its 202) to Twilio accepting the message, for "
            "deliveries sent at their first attempt and not held by delay/send_at.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._sender_rate = Gauge(
            "smsdest_sender_rate",
            "Each sender's pace now, in segments per second: its declared rate, lowered by "
            "Twilio's slow-down codes (AIMD), as this process last read it from Redis.",
            ["sender"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        # Children by label values: `labels()` takes a lock and builds a tuple per call.
        self._event_children = {
            shape: self._events.labels(shape)
            for shape in ("posthog_webhook", "posthog_event", "segment_track", "internal")
        }
        self._decision_children: dict[tuple[str, str], Counter] = {}
        self._send_children: dict[tuple[str, str], Counter] = {}
        self._twilio_children: dict[tuple[int | None, int | None], Counter] = {}

    # --- the hot paths -----------------------------------------------------------------

    def event_received(self, shape: EventShape) -> None:
        self._event_children[shape].inc()

    def decided(self, destination: str, decision: str) -> None:
        key = (destination, decision)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self._decisions.labels(*key)
        child.inc()

    def send_attempted(self, destination: str, status: str) -> None:
        key = (destination, status)
        child = self._send_children.get(key)
        if child is None:
            child = self._send_children[key] = self._sends.labels(*key)
        child.inc()

    def outcome_unknown(self, destination: str) -> None:
        self._unknown.labels(destination).inc()

    def provider_answered(
        self, http_status: int | None, error_code: int | None, seconds: float
    ) -> None:
        """One message create: the provider's HTTP status (None: no answer) and error code
        (counted in smsdest_twilio_requests, the name dashboards know)."""
        key = (http_status, error_code)
        child = self._twilio_children.get(key)
        if child is None:
            child = self._twilio_children[key] = self._twilio.labels(
                "none" if http_status is None else str(http_status),
                "" if error_code is None else str(error_code),
            )
        child.inc()
        self._send_seconds.observe(seconds)

    def event_to_send(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def sender_rate(self, sender: str, rate: float) -> None:
        """A sender's pace (segments per second), as a reservation or a cut just found it."""
        self._sender_rate.labels(sender).set(rate)

    # --- the scrape ----------------------------------------------------------------------

    def exposition(self, queue: QueueSnapshot | Exception | None) -> bytes:
        """The text format: this process's (or every process's) metrics, then the queue's
        gauges (`queue`: read just now; the error that prevented it; None: no store)."""
        if multiprocess_dir() is None:
            registry = self.registry
        else:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
        if queue is not None:
            snapshot = CollectorRegistry()
            snapshot.register(_QueueCollector(queue))
            text += generate_latest(snapshot)
        return text


class _QueueCollector(Collector):
    """The queue gauges of one scrape (values read just before, through the store)."""

    def __init__(self, queue: QueueSnapshot | Exception) -> None:
        self._queue = queue

    def collect(self) -> Iterable[Metric]:
        queue = self._queue
        yield GaugeMetricFamily(
            "smsdest_redis_up",
            "1 when this scrape could read the queue from Redis, 0 when Redis failed.",
            value=0 if isinstance(queue, Exception) else 1,
        )
        if isinstance(queue, Exception):
            return
        yield GaugeMetricFamily(
            "smsdest_queue_depth",
            "Send stream entries: waiting for a worker, or being sent.",
            value=queue.depth,
        )
        yield GaugeMetricFamily(
            "smsdest_queue_delayed",
            "Deliveries waiting outside the stream: retries in backoff, messages held until "
            "their send time.",
            value=queue.delayed,
        )
        yield GaugeMetricFamily(
            "smsdest_queue_oldest_age_seconds",
            "How long the oldest send stream entry has waited (0 when the stream is empty).",
            value=queue.oldest_age_s,
        )
        by_status = GaugeMetricFamily(
            "smsdest_deliveries_waiting",
            "Deliveries not yet handed to Twilio, by status.",
            labels=["status"],
        )
        for status, count in queue.by_status.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "smsdest_deliveries_unknown",
            "Deliveries whose last send attempt has an unknown outcome (the request may have "
            "reached Twilio), waiting for the resolver to ask Twilio's message list.",
            value=queue.unknown,
        )
        yield GaugeMetricFamily(
            "smsdest_paused_destinations",
            "Destinations paused now (by an operator, a Twilio error code or their budget).",
            value=queue.paused_destinations,
        )
