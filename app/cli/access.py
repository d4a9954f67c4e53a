"""How operator commands reach a service: its Redis (SMS_REDIS_URL, or the embedded one a
running `smsdest serve` announces under SMS_DATA_DIR) or its HTTP API (SMS_API_URL with
SMS_ADMIN_TOKEN). Both answer with the API's JSON shapes, so output is written once.

Exit statuses (README, "Command line"): 0 done; 1 Redis, Twilio or the API failed; 2 bad
command line, input or settings; 3 not found; 4 the destinations file is invalid (reload
refused, the running configuration kept); 5 the tested event would not be sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from app.cli.output import Output
from app.cli.plumbing import CliError, load_settings, open_services, with_running_redis
from app.store.records import epoch_ms

if TYPE_CHECKING:
    from app.cli.plumbing import Subcommands
    from app.services import Services
    from app.services.replay import ReplaySelection
    from app.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFIG_REFUSED = 4
EXIT_NOT_SENT = 5


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries a listing shows (every field optional; `since`/`until` inclusive)."""

    destination: str | None = None
    status: str | None = None
    recipient: str | None = None
    error_code: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, str]:
        """The filter as the API's query parameters."""
        return {
            k: v
            for k, v in (
                ("destination", self.destination),
                ("status", self.status),
                ("recipient", self.recipient),
                ("error_code", None if self.error_code is None else str(self.error_code)),
                ("since", self.since.isoformat() if self.since else None),
                ("until", self.until.isoformat() if self.until else None),
            )
            if v
        }


class Backend(Protocol):
    """What the operator commands need of a service."""

    async def deliveries(
        self, where: DeliveryFilter, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    async def delivery(self, delivery_id: str) -> dict[str, Any]: ...

    async def trace(
        self, destination: str, event: dict[str, Any], send: bool
    ) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...

    async def replay(self, selection: ReplaySelection, dry_run: bool) -> dict[str, Any]: ...

    async def pause(
        self, destination: str, reason: str | None, until: datetime | None
    ) -> dict[str, Any]: ...

    async def resume(self, destination: str) -> dict[str, Any]: ...


class NotFoundError(Exception):
    """What was asked for does not exist (exit 3)."""


class LocalBackend:
    """The service's own objects over its Redis, the destinations read from the file."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._loaded = False

    def _destinations_loaded(self) -> None:
        from app.services.reload import load_configured_destinations

        if not self._loaded:
            self._services.ingest.use_destinations(
                load_configured_destinations(self._services.settings)
            )
            self._loaded = True

    async def deliveries(
        self, where: DeliveryFilter, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        page = await self._services.deliveries.query(
            destination=where.destination,
            status=where.status,
            recipient=where.recipient,
            error_code=where.error_code,
            since_ms=epoch_ms(where.since),
            until_ms=epoch_ms(where.until),
            cursor=cursor,
            limit=limit,
        )
        return [r.to_public() for r in page.items], page.next_cursor

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        record = await self._services.deliveries.get(delivery_id)
        if record is None:
            raise NotFoundError(f"no delivery with id {delivery_id!r} (unknown or past retention)")
        return record.to_public()

    async def trace(self, destination: str, event: dict[str, Any], send: bool) -> dict[str, Any]:
        from app.errors import InvalidInput
        from app.pipeline.events import InvalidPayload, parse_event

        self._destinations_loaded()
        found = self._services.ingest.destinations.get(destination)
        if found is None:
            raise NotFoundError(f"no destination with id {destination!r}")
        try:
            parsed = parse_event(event)
        except InvalidPayload as exc:
            raise InvalidInput(
                [
                    {"field": f"event.{p.field}".rstrip("."), "problem": p.problem}
                    for p in exc.problems
                ]
            ) from None
        return await self._services.ingest.trace(found, parsed, mock=not send)

    async def reload(self) -> dict[str, Any]:
        # Validate here, then bump the generation: every `serve` reloads within its poll.
        # A refusal is this command's own error message, not a log line besides it.
        logging.getLogger("app.services.reload").disabled = True
        reloader = self._services.reloader
        assert reloader is not None  # a process with Redis has one
        return (await reloader.reload()).to_json()

    async def replay(self, selection: ReplaySelection, dry_run: bool) -> dict[str, Any]:
        self._destinations_loaded()
        return (await self._services.replay.replay(selection, dry_run=dry_run)).to_json()

    async def pause(
        self, destination: str, reason: str | None, until: datetime | None
    ) -> dict[str, Any]:
        self._destinations_loaded()
        pause = await self._services.pauses.pause(destination, reason, until)
        return {"destination": destination, "paused": True, "pause": pause.to_json()}

    async def resume(self, destination: str) -> dict[str, Any]:
        self._destinations_loaded()
        _, released = await self._services.pauses.resume(destination)
        return {"destination": destination, "paused": False, "pause": None, "released": released}


class ApiError(Exception):
    """The API refused or failed: its status and error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(status)

    def text(self) -> str:
        detail = self.body.get("detail")
        if isinstance(detail, list):
            lines = [
                f"  {p.get('field')}: {p.get('problem')}" for p in detail if isinstance(p, dict)
            ]
            return f"{self.body.get('error', 'error')} (HTTP {self.status}):\n" + "\n".join(lines)
        return f"{detail or self.body.get('error')} (HTTP {self.status})"


class ApiBackend:
    """A running service's HTTP API."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[ApiBackend]:
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(
            base_url=str(settings.api_url), headers=headers, timeout=30
        ) as http:
            yield cls(http)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": "http_error", "detail": response.text[:200]}
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        return response.json()

    async def deliveries(
        self, where: DeliveryFilter, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {**where.query(), "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await self._call("GET", "/v1/deliveries", params=params)
        return page["items"], page["next_cursor"]

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/deliveries/{delivery_id}")
        return result

    async def trace(self, destination: str, event: dict[str, Any], send: bool) -> dict[str, Any]:
        body = {"event": event, "mock": not send}
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/destinations/{destination}/test", json=body
        )
        return result

    async def reload(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/v1/destinations/reload")
        return result

    async def replay(self, selection: ReplaySelection, dry_run: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "statuses": list(selection.statuses),
            "error_codes": list(selection.error_codes),
            "delivery_ids": list(selection.delivery_ids),
            "limit": selection.limit,
            "dry_run": dry_run,
        }
        if selection.destination:
            body["destination"] = selection.destination
        if selection.since:
            body["since"] = selection.since.isoformat()
        if selection.until:
            body["until"] = selection.until.isoformat()
        result: dict[str, Any] = await self._call("POST", "/v1/deliveries/replay", json=body)
        return result

    async def pause(
        self, destination: str, reason: str | None, until: datetime | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason, "until": until.isoformat() if until else None}
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/destinations/{destination}/pause", json=body
        )
        return result

    async def resume(self, destination: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/v1/destinations/{destination}/resume")
        return result


Access = Callable[[argparse.Namespace, Backend, Output], Awaitable[int | None]]


def _run(operation: Access, args: argparse.Namespace, *, prog: str) -> int:
    """Open the service the settings point at (API or Redis), run `operation`, map errors."""
    settings = load_settings()
    out = Output(as_json=args.json)

    async def run() -> int:
        if settings.api_url:
            async with ApiBackend.open(settings) as api:
                return await operation(args, api, out) or 0
        local = with_running_redis(settings, prog)
        async with open_services(local, redis=True) as services:
            return await operation(args, LocalBackend(services), out) or 0

    try:
        return asyncio.run(run())
    except Exception as exc:
        failure = _as_cli_error(exc)
        if failure is None:
            raise
        raise failure from None


def _as_cli_error(exc: Exception) -> CliError | None:
    from app.cli.plumbing import _as_cli_error as service_failure
    from app.errors import NotFound
    from app.services.reload import ReloadRefused

    if isinstance(exc, NotFoundError | NotFound):
        return CliError(str(exc), EXIT_NOT_FOUND)
    if isinstance(exc, ReloadRefused):
        return CliError(str(exc.detail), EXIT_CONFIG_REFUSED)
    if isinstance(exc, ApiError):
        if exc.status == 404:
            return CliError(exc.text(), EXIT_NOT_FOUND)
        if exc.body.get("error") == ReloadRefused.error:
            return CliError(str(exc.body.get("detail")), EXIT_CONFIG_REFUSED)
        return CliError(exc.text(), EXIT_USAGE if exc.status < 500 else EXIT_FAILED)
    if isinstance(exc, httpx.HTTPError):
        return CliError(f"cannot reach the API: {exc}", EXIT_FAILED)
    return service_failure(exc)


def add_access_command(
    commands: Subcommands, name: str, operation: Access, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand run against the service (API or Redis) with `--json`."""
    parser = commands.add_parser(name, help=help, description=description or help)
    parser.add_argument("--json", action="store_true", help="JSON (lists: JSON Lines)")
    parser.set_defaults(run=functools.partial(_run, operation, prog=parser.prog))
    return parser
