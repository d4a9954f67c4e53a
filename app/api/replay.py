"""POST /v1/deliveries/replay: send failed deliveries again, re-checked now (dry run first)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.api.deps import ServicesDep, require_admin_token
from app.api.params import DELIVERY_ID, DESTINATION_FILTER
from app.api.schemas import errors
from app.bodies import StrictBody
from app.services.replay import REPLAYABLE, ReplaySelection

router = APIRouter(
    tags=["deliveries"], dependencies=[Depends(require_admin_token)], responses=errors(401)
)


class ReplayRequest(StrictBody):
    destination: Annotated[str | None, Field(pattern=DESTINATION_FILTER)] = None
    statuses: Annotated[list[str] | None, Field(max_length=10)] = Field(
        default=None, description=f"Any of {', '.join(REPLAYABLE)} (default: all of them)"
    )
    since: AwareDatetime | None = Field(default=None, description="Created at or after")
    until: AwareDatetime | None = Field(default=None, description="Created before")
    error_codes: Annotated[list[Annotated[int, Field(ge=0, le=10**6)]], Field(max_length=50)] = (
        Field(default_factory=list, description="Twilio error codes (any of them)")
    )
    delivery_ids: Annotated[
        list[Annotated[str, Field(pattern=DELIVERY_ID)]], Field(max_length=1000)
    ] = Field(default_factory=list, description="Exactly these (Resend is one id)")
    limit: int = Field(default=100, ge=1, le=1000)
    dry_run: bool = Field(default=True, description="false really sends")

    @model_validator(mode="after")
    def _known_statuses(self) -> ReplayRequest:
        unknown = [s for s in self.statuses or () if s not in REPLAYABLE]
        if unknown:
            raise ValueError(f"statuses: {unknown[0]!r} is not one of {', '.join(REPLAYABLE)}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ReplayedDelivery(BaseModel):
    model_config = ConfigDict(extra="allow")

    delivery_id: str
    destination: str
    recipient: str | None
    status: str
    error_code: int | None
    action: str = Field(description="`would_send`, `replayed` or `skipped`")
    reason: str | None = Field(
        description="Why skipped: `not_replayable`, `already_replayed`, `already_reached`, "
        "`destination_gone`, `destination_disabled`, `not_sendable`, `opted_out`, `throttled`, "
        "`blocked_velocity`, `capped`"
    )
    detail: str | None
    replay_id: str | None = Field(description="The new delivery (or the earlier replay)")


class ReplayAnswer(BaseModel):
    dry_run: bool
    selected: int
    would_send: int
    replayed: int
    skipped: int
    truncated: bool = Field(description="More deliveries matched than `limit`")
    items: list[ReplayedDelivery]


@router.post("/v1/deliveries/replay", response_model=ReplayAnswer, responses=errors(422, 503))
async def replay_deliveries(request: ReplayRequest, services: ServicesDep) -> dict[str, Any]:
    """Select failed deliveries and say what a replay would send and skip, and why
    (`dry_run`, the default), or send them: re-checked now against opt-outs and throttle
    windows, never to a recipient their event already reached, never twice."""
    selection = ReplaySelection(
        destination=request.destination,
        statuses=tuple(s for s in REPLAYABLE if s in request.statuses)
        if request.statuses
        else REPLAYABLE,
        since=request.since,
        until=request.until,
        error_codes=tuple(request.error_codes),
        delivery_ids=tuple(request.delivery_ids),
        limit=request.limit,
    )
    report = await services.replay.replay(selection, dry_run=request.dry_run)
    return report.to_json()
