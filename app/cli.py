"""`smsdest`: serve the API (with a worker), run extra workers, check a destinations file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from app.destinations import ConfigError
from app.settings import Settings, SettingsError

log = logging.getLogger("smsdest")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(f"invalid settings:\n{problems}") from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings()
    _configure_logging(settings.log_level)
    app = create_app(settings, run_worker=not args.no_worker)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def worker(_: argparse.Namespace) -> None:
    from app.main import (
        BackgroundJobs,
        build_twilio_client,
        load_configured_destinations,
        open_resources,
    )
    from app.store.deliveries import DeliveryLog

    settings = _settings()
    _configure_logging(settings.log_level)
    if settings.redis_url is None:
        raise SettingsError("smsdest worker needs SMS_REDIS_URL (the embedded Redis is serve's)")
    load_configured_destinations(settings)  # same config checks as serve

    async def run() -> None:
        async with open_resources(settings) as (redis, http):
            deliveries = DeliveryLog(redis, settings.dedupe_ttl, settings.delivery_retention)
            jobs = BackgroundJobs(settings, redis, deliveries, build_twilio_client(settings, http))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, jobs.stop)
            log.info("worker started")
            await jobs.run()

    asyncio.run(run())


def check_config(args: argparse.Namespace) -> None:
    from app.destinations import load_destinations
    from app.pipeline.render import TemplateRenderer

    settings = _settings()
    path = Path(args.file) if args.file else settings.destinations_file
    destinations = load_destinations(path, TemplateRenderer(settings.templates_dir))
    print(f"{path}: OK, {len(destinations)} destination(s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="smsdest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP API (and a send worker)")
    serve_cmd.add_argument("--host", help="default: SMS_HOST")
    serve_cmd.add_argument("--port", type=int, help="default: SMS_PORT")
    serve_cmd.add_argument("--no-worker", action="store_true", help="API only, no send worker")
    serve_cmd.set_defaults(run=serve)
    commands.add_parser("worker", help="run one extra send worker").set_defaults(run=worker)
    check = commands.add_parser("check-config", help="validate a destinations file")
    check.add_argument("file", nargs="?", help="default: SMS_DESTINATIONS_FILE")
    check.set_defaults(run=check_config)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ConfigError, SettingsError) as exc:
        print(f"smsdest: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
