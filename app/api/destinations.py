"""POST /v1/destinations/{id}/test: one event through one destination, fully traced."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import DestinationId
from app.api.schemas import ONE_EVENT_SCHEMA, DestinationList, DestinationTrace, errors
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


@router.get("/v1/destinations", response_model=DestinationList)
async def list_destinations(services: ServicesDep) -> dict[str, Any]:
    """The loaded destinations (as configured, templates as written)."""
    configs = services.ingest.destinations.configs()
    return {"items": [c.model_dump(mode="json", by_alias=True) for c in configs]}


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
