"""Hot reload of the destinations file: validated in full first (the loader check-config
uses), swapped into ingest only when good, and announced to every process of the
deployment through a generation counter in Redis that each `serve` polls.

A delivery already admitted carries everything its send needs (recipient, body, sender),
so swapping destinations never changes what the worker sends for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.destinations import ConfigError, Defaults, DestinationSet, load_destinations
from app.errors import ServiceError
from app.pipeline.render import TemplateRenderer
from app.services.ingest import IngestService
from app.settings import Settings
from app.store import StorageError
from app.store.config_generation import ConfigGeneration
from app.store.pacing import SenderPacing

log = logging.getLogger(__name__)


def load_configured_destinations(settings: Settings) -> DestinationSet:
    """Read the destinations file with the configured templates folder (raises ConfigError)."""
    return load_destinations(
        settings.destinations_file,
        TemplateRenderer(settings.templates_dir),
        Defaults.of(settings),
    )


class ReloadRefused(ServiceError):
    """422: the new destinations file is invalid; the running configuration stays."""

    status_code = 422
    error = "invalid_destinations"


_KEPT = "the running configuration is kept"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """A reload that took: the generation now running and what was loaded."""

    generation: int
    destinations: int
    file: str
    sha256: str
    reloaded_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "reloaded": True,
            "generation": self.generation,
            "destinations": self.destinations,
            "file": self.file,
            "sha256": self.sha256,
            "reloaded_at": self.reloaded_at,
        }


class DestinationReloader:
    """Reloads this process's destinations, and follows reloads done by other processes."""

    def __init__(
        self,
        settings: Settings,
        ingest: IngestService,
        generations: ConfigGeneration,
        pacing: SenderPacing | None = None,
    ) -> None:
        self._settings = settings
        self._pacing = pacing  # where `senders:` is published for every worker
        self._ingest = ingest
        self._generations = generations
        self._lock = asyncio.Lock()
        self.generation = 0  # the generation this process runs
        # Why the last reload was refused (None once one succeeds): the console's banner.
        self.last_error: str | None = None
        self.last_error_at: str | None = None

    async def start(self) -> None:
        """Adopt the deployment's current generation (the file was just loaded). With
        Redis down the service still starts (ingest answers 503): the first poll that
        reads a generation may reload the file once more, which changes nothing."""
        try:
            self.generation = await self._generations.current()
        except StorageError as exc:
            log.warning("cannot read the config generation: %s", exc)
        await self.publish_senders(self._ingest.destinations)

    async def publish_senders(self, destinations: DestinationSet) -> None:
        """Publish `senders:` to Redis, where every worker's pacing reads it (workers do not
        read the file again; a failure is logged, and the next load publishes)."""
        if self._pacing is None:
            return
        try:
            await self._pacing.publish(destinations.sender_rates)
        except StorageError as exc:
            log.warning("cannot publish the senders' rates: %s", exc)

    async def reload(self, *, announce: bool = True) -> ReloadResult:
        """Load the file again; swap it in only if valid, else raise `ReloadRefused`.

        `announce`: bump the generation so every other process reloads too.
        """
        async with self._lock:
            path = self._settings.destinations_file
            try:
                # Off the event loop: reading and compiling templates can take a while.
                destinations, digest = await asyncio.to_thread(self._load)
            except (ConfigError, OSError) as exc:
                # ConfigError names file, line, destination and field for every problem.
                why = str(exc) if isinstance(exc, ConfigError) else f"{path}: {exc.strerror}"
                self.last_error, self.last_error_at = why, _now()
                log.error("reload refused, %s: %s", _KEPT, why)
                raise ReloadRefused(f"{_KEPT}: {why}") from None
            self._ingest.use_destinations(destinations)
            self.last_error = self.last_error_at = None
            await self.publish_senders(destinations)
            if announce:
                self.generation = await self._generations.bump()
            log.info(
                "destinations reloaded from %s: %d destination(s), generation %d",
                path,
                len(destinations),
                self.generation,
            )
            return ReloadResult(self.generation, len(destinations), str(path), digest, _now())

    def _load(self) -> tuple[DestinationSet, str]:
        digest = hashlib.sha256(self._settings.destinations_file.read_bytes()).hexdigest()
        return load_configured_destinations(self._settings), digest

    async def follow(self, interval: float, stopping: asyncio.Event) -> None:
        """Poll the generation every `interval` seconds; reload when another process did."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                current = await self._generations.current()
            except StorageError as exc:
                log.warning("cannot read the config generation: %s", exc)
                continue
            if current == self.generation:
                continue
            self.generation = current  # refused or not: try again at the next reload only
            with contextlib.suppress(ReloadRefused):  # logged, and kept in last_error
                await self.reload(announce=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
