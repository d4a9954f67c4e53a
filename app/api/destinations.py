"""GET /v1/destinations; POST /v1/destinations/{id}/test (one event through one
destination, fully traced); POST /v1/destinations/{id}/pause and …/resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import AwareDatetime, Field

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import DestinationId
from app.api.schemas import (
    ONE_EVENT_SCHEMA,
    DestinationList,
    DestinationTrace,
    PauseState,
    errors,
)
from app.bodies import StrictBody
from app.errors import InvalidInput, NotFound
from app.pipeline.events import InvalidPayload, parse_event

router = APIRouter(
    tags=["destinations"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


class DestinationTestRequest(StrictBody):
    event: dict[str, Any] = Field(
        description="Any accepted event shape (not a batch)", json_schema_extra=ONE_EVENT_SCHEMA
    )
    mock: bool = Field(default=True, description="false really sends through Twilio")


class PauseRequest(StrictBody):
    reason: str | None = Field(
        default=None, max_length=200, description="Why, in words (shown in every decision)"
    )
    until: AwareDatetime | None = Field(
        default=None, description="When the pause ends by itself (future; null: until resumed)"
    )


@router.get("/v1/destinations", response_model=DestinationList, responses=errors(503))
async def list_destinations(services: ServicesDep) -> dict[str, Any]:
    """The loaded destinations (as configured, templates as written), each with the pause
    in force (`pause`, null when it sends)."""
    configs = services.ingest.destinations.configs()
    paused = await services.pauses.all()
    return {
        "items": [
            {
                **c.model_dump(mode="json", by_alias=True),
                "pause": pause.to_json() if (pause := paused.get(c.id)) else None,
            }
            for c in configs
        ]
    }


@router.post(
    "/v1/destinations/{destination_id}/pause",
    response_model=PauseState,
    responses=errors(404, 422, 503),
)
async def pause_destination(
    destination_id: DestinationId,
    services: ServicesDep,
    request: Annotated[PauseRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Pause a destination: it admits nothing (`destination_paused`) and its deliveries
    already admitted are held until it resumes. A pause in force is replaced."""
    ask = request or PauseRequest()
    pause = await services.pauses.pause(destination_id, ask.reason, ask.until)
    return {"destination": destination_id, "paused": True, "pause": pause.to_json()}


@router.post(
    "/v1/destinations/{destination_id}/resume",
    response_model=PauseState,
    responses=errors(404, 422, 503),
)
async def resume_destination(
    destination_id: DestinationId, services: ServicesDep
) -> dict[str, Any]:
    """Resume a destination: it admits again, its held deliveries are due at once (each
    still checked at send time: lifetime, opt-out). A budget pause resumed waives the rest
    of that day's budget. Resuming a destination that is not paused changes nothing."""
    _, released = await services.pauses.resume(destination_id)
    return {"destination": destination_id, "paused": False, "pause": None, "released": released}


@router.post(
    "/v1/destinations/{destination_id}/test",
    response_model=DestinationTrace,
    responses=errors(404, 409, 413, 422, 503),
)
async def test_destination(
    destination_id: DestinationId, request: DestinationTestRequest, services: ServicesDep
) -> dict[str, Any]:
    destination = services.ingest.destinations.get(destination_id)
    if destination is None:
        raise NotFound(f"no destination with id {destination_id!r}")
    try:
        event = parse_event(request.event)
    except InvalidPayload as exc:
        raise InvalidInput(
            [{"field": f"event.{p.field}".rstrip("."), "problem": p.problem} for p in exc.problems]
        ) from None
    return await services.ingest.trace(destination, event, mock=request.mock)
