"""POST /v1/destinations/reload: read the destinations file again, in every process."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.api.deps import ServicesDep, require_admin_token
from app.api.schemas import errors
from app.errors import Unavailable
from app.services import Services
from app.services.reload import DestinationReloader

router = APIRouter(
    tags=["destinations"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


class ReloadAnswer(BaseModel):
    reloaded: bool
    generation: int = Field(description="Every process runs this generation once it polled")
    destinations: int = Field(description="How many destinations the new file has")
    file: str
    sha256: str = Field(description="Of the file as loaded")
    reloaded_at: str


def _reloader(services: Services) -> DestinationReloader:
    if services.reloader is None:
        raise Unavailable("this process runs without Redis")
    return services.reloader


@router.post("/v1/destinations/reload", response_model=ReloadAnswer, responses=errors(422, 503))
async def reload_destinations(services: ServicesDep) -> dict[str, Any]:
    """Validate the destinations file in full and swap it in; every process follows (a
    counter in Redis each polls every `SMS_CONFIG_POLL_INTERVAL`). A bad file changes
    nothing: 422 `invalid_destinations` with every problem and its line."""
    result = await _reloader(services).reload()
    return result.to_json()
