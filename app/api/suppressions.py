"""The suppression list: numbers that opted out, never texted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import MAX_SCAN_CURSOR, PhoneNumber
from app.api.schemas import Suppression, SuppressionAdded, SuppressionPage, errors
from app.bodies import StrictBody
from app.errors import InvalidInput, NotFound
from app.pipeline.recipients import InvalidRecipient, normalize_phone

router = APIRouter(
    tags=["suppressions"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


class SuppressionCreate(StrictBody):
    number: str = Field(
        min_length=1,
        max_length=250,
        description="A phone number, international or national (`SMS_DEFAULT_REGION`)",
    )


def _number(raw: str, services: ServicesDep, field: str) -> str:
    try:
        return normalize_phone(raw, services.settings.default_region)
    except InvalidRecipient as exc:
        raise InvalidInput([{"field": field, "problem": str(exc)}]) from None


@router.get("/v1/suppressions", response_model=SuppressionPage, responses=errors(422, 503))
async def list_suppressions(
    services: ServicesDep,
    cursor: Annotated[int, Query(ge=0, le=MAX_SCAN_CURSOR)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A page of suppressed numbers; `next_cursor` is null on the last page."""
    items, next_cursor = await services.suppressions.page(cursor, limit)
    return {"items": [s.to_json() for s in items], "next_cursor": next_cursor or None}


@router.get(
    "/v1/suppressions/{number}", response_model=Suppression, responses=errors(404, 422, 503)
)
async def get_suppression(number: PhoneNumber, services: ServicesDep) -> dict[str, Any]:
    normalized = _number(number, services, "path.number")
    found = await services.suppressions.get(normalized)
    if found is None:
        raise NotFound(f"{normalized} is not suppressed")
    return found.to_json()


@router.post(
    "/v1/suppressions",
    status_code=201,
    response_model=SuppressionAdded,
    responses=errors(413, 422, 503),
)
async def add_suppression(request: SuppressionCreate, services: ServicesDep) -> dict[str, Any]:
    number = _number(request.number, services, "body.number")
    added = await services.suppressions.add(number, "api")
    found = await services.suppressions.get(number)
    return {**(found.to_json() if found else {"number": number}), "added": added}


@router.delete("/v1/suppressions/{number}", status_code=204, responses=errors(404, 422, 503))
async def remove_suppression(number: PhoneNumber, services: ServicesDep) -> None:
    normalized = _number(number, services, "path.number")
    if not await services.suppressions.remove(normalized):
        raise NotFound(f"{normalized} is not suppressed")
