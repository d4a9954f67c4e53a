"""uvicorn with a graceful stop, for `smsdest serve`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("smsdest")


class DrainingServer(uvicorn.Server):
    """The first SIGTERM/SIGINT drains the app (`app.state.drain`: /readyz red, new ingest
    503, in-flight sends given SMS_SHUTDOWN_GRACE) while it keeps serving, then stops it as
    uvicorn does, with exit status 0. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = getattr(self._app.state, "drain", None)
        if self._draining is not None or drain is None or not self.started:
            super().handle_exit(sig, frame)
            return
        log.info("signal %d: draining (SMS_SHUTDOWN_GRACE at most), then stopping", sig)
        self._draining = asyncio.get_running_loop().create_task(self._drain(drain))

    async def _drain(self, drain: Callable[[], Awaitable[None]]) -> None:
        try:
            await drain()
        finally:
            # Not through handle_exit: uvicorn would raise the signal again once stopped,
            # and the process would end by it instead of with status 0.
            self.should_exit = True
