"""Message operations: send now or later, get, list, cancel, redact, delete."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import TWILIO_PAGE_URI, MessageReference, MessageSid, OptionalNumber
from app.api.schemas import CancelResult, MessageAdmission, MessagePage, errors
from app.bodies import MessageCreate
from app.sms.reports import MessageQuery
from app.twilio.models import TwilioMessage

router = APIRouter(
    tags=["messages"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


@router.post(
    "/v1/messages",
    status_code=202,
    response_model=MessageAdmission,
    response_model_exclude_none=True,
    responses=errors(413, 422, 503),
)
async def send_message(
    request: MessageCreate,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Queue a message (or hold it until `send_at`) through the delivery pipeline."""
    admission = await services.messages.send(request, idempotency_key)
    return {
        "delivery_id": admission.delivery_id,
        "decision": admission.decision,
        **({"detail": admission.detail} if admission.detail else {}),
    }


@router.get("/v1/messages", response_model=MessagePage, responses=errors(422, "4XX", 502))
async def list_messages(
    services: ServicesDep,
    to: OptionalNumber = None,
    from_: Annotated[OptionalNumber, Query(alias="from")] = None,
    date_sent: date | None = None,
    date_sent_before: date | None = None,
    date_sent_after: date | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=TWILIO_PAGE_URI, description="a previous `next_cursor`")
    ] = None,
) -> dict[str, Any]:
    """Twilio's message list; pass `next_cursor` back as `cursor` for the next page."""
    page = await services.messages.list(
        MessageQuery(to, from_, date_sent, date_sent_before, date_sent_after, page_size, cursor)
    )
    return {"items": [m.raw for m in page.messages], "next_cursor": page.next_cursor}


@router.get(
    "/v1/messages/{sid}", response_model=TwilioMessage, responses=errors(404, 422, "4XX", 502)
)
async def get_message(sid: MessageSid, services: ServicesDep) -> dict[str, Any]:
    message = await services.messages.get(sid)
    return dict(message.raw)


@router.post(
    "/v1/messages/{reference}/cancel",
    response_model=CancelResult,
    response_model_exclude_none=True,
    responses=errors(404, 409, 422, 503, "4XX", 502),
)
async def cancel_message(reference: MessageReference, services: ServicesDep) -> dict[str, Any]:
    """Cancel a scheduled message: ours by delivery id (`dl_…`), or Twilio's by SID."""
    return await services.messages.cancel(reference)


@router.post(
    "/v1/messages/{sid}/redact",
    response_model=TwilioMessage,
    responses=errors(404, 422, "4XX", 502),
)
async def redact_message(sid: MessageSid, services: ServicesDep) -> dict[str, Any]:
    message = await services.messages.redact(sid)
    return dict(message.raw)


@router.delete("/v1/messages/{sid}", status_code=204, responses=errors(404, 409, 422, "4XX", 502))
async def delete_message(sid: MessageSid, services: ServicesDep) -> None:
    await services.messages.delete(sid)
