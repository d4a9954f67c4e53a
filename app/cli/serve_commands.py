"""`smsdest serve`, `smsdest worker` and `smsdest check-config`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.plumbing import (
    CliError,
    load_settings,
    open_services,
    run_event_loop,
)
from app.logs import configure_logging
from app.settings import SettingsError

if TYPE_CHECKING:
    import uvicorn

    from app.cli.plumbing import Subcommands
    from app.services import Services

log = logging.getLogger("smsdest")


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.cli.draining import DrainingServer
    from app.main import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, run_worker=not args.no_worker)
    if settings.redis_url is not None:
        # The wrong Redis (Cluster, evicting, a replica) in one line and exit 2 (after the
        # configuration's own checks, in create_app), as the worker says it, rather than
        # in uvicorn's trace of a failed start-up.
        from app.store.storage import refuse_unfit_redis

        run_event_loop(refuse_unfit_redis(settings))
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's lines go through our handler and format (app/logs.py)
    )
    server = DrainingServer(config, app)
    server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: start-up failed (the trace above says why)


def worker(_: argparse.Namespace) -> None:
    from app.main import load_configured_destinations

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.redis_url is None:
        raise SettingsError("smsdest worker needs SMS_REDIS_URL (the embedded Redis is serve's)")
    # Same config checks as serve; the worker's ingest matches the service's own events
    # (`$sms_destination_paused`, emitted when Twilio's answer pauses a destination) to it.
    destinations = load_configured_destinations(settings)

    async def run() -> None:
        async with open_services(settings, redis=True, destinations=destinations) as services:
            if services.reloader is not None:
                await services.reloader.publish_senders(destinations)
            jobs = services.background_jobs()
            metrics = _metrics_server(services) if settings.metrics_port else None

            def stop() -> None:
                jobs.stop()
                if metrics:
                    metrics.should_exit = True

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop)
            # A deployment may SIGHUP every process to reload: a worker sends what was
            # admitted and has nothing to reload, but must not die of it either.
            loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP: nothing to reload")
            log.info("worker started")
            await asyncio.gather(jobs.run(), *([metrics.serve()] if metrics else []))

    run_event_loop(run())


def _metrics_server(services: Services) -> uvicorn.Server:
    """uvicorn serving the worker's /metrics on SMS_METRICS_PORT."""
    import uvicorn

    from app.api.metrics import worker_metrics_app

    class _MetricsServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the worker handles SIGINT/SIGTERM itself (and stops this server)

    settings = services.settings
    config = uvicorn.Config(
        worker_metrics_app(services),
        host=settings.host,
        port=settings.metrics_port or 0,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    return _MetricsServer(config)


def check_config(args: argparse.Namespace) -> None:
    from app.destinations import Defaults, load_destinations
    from app.pipeline.render import TemplateRenderer

    settings = load_settings()
    path = Path(args.file) if args.file else settings.destinations_file
    renderer = TemplateRenderer(settings.templates_dir)
    destinations = load_destinations(path, renderer, Defaults.of(settings))
    if len(destinations) == 0:
        raise CliError(f"{path}: no destinations (list them under 'destinations:')", code=1)
    print(f"{path}: OK, {len(destinations)} destination(s)")


def add_serve_commands(commands: Subcommands) -> None:
    serve_cmd = commands.add_parser("serve", help="run the HTTP API (and a send worker)")
    serve_cmd.add_argument("--host", help="default: SMS_HOST")
    serve_cmd.add_argument("--port", type=int, help="default: SMS_PORT")
    serve_cmd.add_argument("--no-worker", action="store_true", help="API only, no send worker")
    serve_cmd.set_defaults(run=serve)
    commands.add_parser("worker", help="run one extra send worker").set_defaults(run=worker)
    check = commands.add_parser("check-config", help="validate a destinations file")
    check.add_argument("file", nargs="?", help="default: SMS_DESTINATIONS_FILE")
    check.set_defaults(run=check_config)
