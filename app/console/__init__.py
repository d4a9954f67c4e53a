"""The web console at /console: server-rendered pages over the API's own services."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.console.auth import SessionKeys
from app.console.routes import router
from app.settings import Settings

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI, settings: Settings) -> None:
    """Mount the console's pages and its static files (CSS and a few lines of JS)."""
    app.state.console_keys = SessionKeys(settings)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
