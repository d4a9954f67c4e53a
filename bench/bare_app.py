"""The baseline: a bare FastAPI app with only `POST /v1/events`, served like the service.

It reads and parses the same JSON body (orjson, as the service does) and answers 202
``{}``; uvicorn runs it exactly as `smsdest serve` runs the service (`uvicorn.run` with
the defaults, one process, access log off): ``python -m bench.bare_app --port 8998``.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/v1/events", status_code=202)
async def post_events(request: Request) -> dict[str, Any]:
    """Parse the body and accept it."""
    orjson.loads(await request.body())
    return {}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready as soon as it serves."""
    return {"status": "ready"}


def main() -> None:
    """Serve on 127.0.0.1 with the same uvicorn call as `smsdest serve`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
