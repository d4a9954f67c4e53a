"""GET /v1/deliveries and /v1/deliveries/{id}: the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import DELIVERY_ID, DESTINATION_FILTER, DeliveryId
from app.api.schemas import Delivery, DeliveryPage, errors
from app.errors import InvalidInput, NotFound
from app.pipeline.recipients import InvalidRecipient, normalize_phone
from app.store.records import DeliveryStatus, epoch_ms

router = APIRouter(
    tags=["deliveries"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


@router.get("/v1/deliveries", response_model=DeliveryPage, responses=errors(422, 503))
async def list_deliveries(
    services: ServicesDep,
    destination: Annotated[str | None, Query(pattern=DESTINATION_FILTER)] = None,
    status: DeliveryStatus | None = None,
    recipient: Annotated[
        str | None, Query(max_length=250, description="E.164, or national format")
    ] = None,
    error_code: Annotated[int | None, Query(ge=0, description="Twilio's error code")] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created at or before (ISO 8601)")] = None,
    cursor: Annotated[str | None, Query(pattern=DELIVERY_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    if recipient:
        try:
            recipient = normalize_phone(recipient, services.settings.default_region)
        except InvalidRecipient as exc:
            raise InvalidInput([{"field": "query.recipient", "problem": str(exc)}]) from None
    page = await services.deliveries.query(
        destination=destination,
        status=status,
        recipient=recipient,
        error_code=error_code,
        since_ms=epoch_ms(since),
        until_ms=epoch_ms(until),
        cursor=cursor,
        limit=limit,
    )
    items = [r.to_public(services.mocked_request(r)) for r in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


@router.get(
    "/v1/deliveries/{delivery_id}", response_model=Delivery, responses=errors(404, 422, 503)
)
async def get_delivery(delivery_id: DeliveryId, services: ServicesDep) -> dict[str, Any]:
    record = await services.deliveries.get(delivery_id)
    if record is None:
        raise NotFound(f"no delivery with id {delivery_id!r} (unknown or past retention)")
    return record.to_public(services.mocked_request(record))
