"""The API's contract: response models, the one error body, and which errors each route
answers — so that `/openapi.json` describes what the service really does (a schemathesis
run in the tests holds it to that)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.destinations import DestinationConfig
from app.twilio.models import TwilioMessage


class Problem(BaseModel):
    field: str = Field(description="Where: `body.to`, `query.cursor`, `[3].event.event`, …")
    problem: str


class TwilioErrorDetail(BaseModel):
    code: int | None = Field(description="Twilio's error code (21211, 20404, …)")
    message: str
    more_info: str | None = None
    status: int = Field(description="Twilio's HTTP status")


class ErrorBody(BaseModel):
    """Every error answer, on every route."""

    error: str = Field(
        description="A stable code: `invalid_input`, `unauthorized`, `forbidden`, "
        "`not_found`, `method_not_allowed`, `conflict`, `payload_too_large`, "
        "`unsupported_media_type`, `unavailable`, `invalid_destinations`, `twilio_error`, "
        "`twilio_unreachable`, `internal_error`"
    )
    detail: list[Problem] | TwilioErrorDetail | str | None = Field(
        description="What went wrong: the problems of invalid input (at most 20, then one "
        "saying how many more), Twilio's error, or a sentence"
    )


_ERROR_DESCRIPTIONS: dict[int | str, str] = {
    401: "Missing or wrong bearer token",
    403: "Missing or invalid `X-Twilio-Signature`",
    404: "No such resource",
    409: "The resource is not in a state that allows this",
    413: "The body is over its limit (`SMS_MAX_BODY_BYTES`, decompressed; 64 KiB for "
    "Twilio's webhooks)",
    415: "A `Content-Encoding` other than gzip, deflate or identity",
    422: "A malformed path, query or body value; `detail` names each field (reload: "
    "`invalid_destinations`, the file's problems with their lines)",
    503: "Redis is unavailable (`Retry-After` says when to retry)",
    "4XX": "Twilio refused the request: `twilio_error`, with Twilio's status and error",
    502: "Twilio failed (5xx) or could not be reached",
}


def errors(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering these error statuses."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


# --- responses ------------------------------------------------------------------------


class DeliveryDecision(BaseModel):
    model_config = ConfigDict(extra="allow")

    destination: str
    decision: str = Field(
        description="`queued`, `scheduled`, `deferred`, `throttled`, `opted_out`, "
        "`duplicate`, `invalid_recipient`, `render_error`, `body_too_long`, "
        "`blocked_country`, `quiet_hours`, `blocked_velocity`, `capped`, `destination_paused`, "
        "`over_budget`"
    )
    delivery_id: str | None = Field(description="For `duplicate`, the original delivery")
    detail: str | dict[str, Any] | None = Field(
        default=None, description="Why, for every decision but `queued`"
    )


class EventResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_uuid: str | None
    event: str
    deliveries: list[DeliveryDecision]


class IngestAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    accepted: int
    results: list[EventResult]


class PauseInfo(BaseModel):
    """A destination's pause in force."""

    since: str = Field(description="When it paused (UTC, ISO 8601)")
    until: str | None = Field(description="When it ends by itself; null: until resumed")
    by: Literal["operator", "error_code", "budget"] = Field(
        description="Who paused it: an operator, a Twilio error code, its daily budget"
    )
    reason: str = Field(description="Why, in words (a code's meaning, the operator's words)")
    code: int | None = Field(description="The Twilio error code that paused it, if any")
    detail: str = Field(description="All of it in one sentence, with how to resume")


class PauseState(BaseModel):
    """A destination's pause state (after a pause or a resume)."""

    destination: str
    paused: bool
    pause: PauseInfo | None = Field(description="The pause in force (null: not paused)")
    released: int | None = Field(
        default=None, description="Resume: how many held deliveries were released"
    )


class ListedDestination(DestinationConfig):
    """A loaded destination as configured, and whether it is paused."""

    pause: PauseInfo | None = Field(default=None, description="The pause in force; null: it sends")


class DestinationList(BaseModel):
    items: list[ListedDestination]


class DestinationTrace(BaseModel):
    """One event through one destination, step by step (fields grow with the pipeline)."""

    model_config = ConfigDict(extra="allow")

    destination: str
    matched: bool
    decision: str | None
    detail: str | None = None


class Delivery(BaseModel):
    """A delivery as the log keeps it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    destination: str | None
    mode: str | None
    status: str
    reason: str | None = None
    detail: str | None = None
    event: dict[str, Any] | None = None
    recipient: str | None = None
    from_: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = None
    body: str | None = None
    encoding: str | None = None
    segments: int | None = None
    attempts: int | None = None
    twilio_sid: str | None = None
    twilio_status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    twilio_request: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    channel: str | None = Field(default=None, description="`sms` (SMS or MMS) or `whatsapp`")
    media_urls: list[str] = Field(default_factory=list)
    content_sid: str | None = None
    expires_at: str | None = Field(
        default=None, description="Never sent after this (the destination's `validity`)"
    )
    history: list[dict[str, Any]] = Field(default_factory=list)


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(description="Pass back as `cursor`; null on the last page")


class MessageAdmission(BaseModel):
    delivery_id: str | None = None
    decision: str = Field(description="`queued`, `scheduled`, `duplicate`, `opted_out`, …")
    detail: str | None = None


class MessagePage(BaseModel):
    items: list[TwilioMessage]
    next_cursor: str | None = Field(description="Pass back as `cursor`; null on the last page")


class CancelResult(BaseModel):
    delivery_id: str | None = Field(default=None, description="A message held here")
    sid: str | None = Field(default=None, description="A message Twilio held")
    status: str | None = Field(description="`canceled`")


class Suppression(BaseModel):
    number: str
    since: str
    source: str = Field(
        description="`inbound`, `twilio_21610` (opted out), `twilio_<code>` (Twilio said the "
        "number cannot take texts: invalid, landline, unreachable…), `api`, `cli`, `console`"
    )
    keyword: str | None = None


class SuppressionAdded(Suppression):
    added: bool = Field(description="false when the number already was suppressed")


class SuppressionPage(BaseModel):
    items: list[Suppression]
    next_cursor: int | None = Field(description="Pass back as `cursor`; null on the last page")


class WebhookAnswer(BaseModel):
    outcome: str
    events: list[EventResult]


# --- the accepted event shapes of POST /v1/events (documentation: the pipeline parses) ---


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PostHogWebhookEvent(_Open):
    uuid: str | None = None
    event: str = Field(min_length=1)
    distinct_id: str | int | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None
    elements_chain: str | None = None
    url: str | None = None


class PostHogPerson(_Open):
    id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    url: str | None = None


class PostHogWebhookBody(_Open):
    """PostHog's HTTP-webhook destination body (`person` is null for events without a
    person profile: person properties then come from `event.properties.$set`)."""

    event: PostHogWebhookEvent
    person: PostHogPerson | None = None
    groups: dict[str, Any] | None = None
    project: dict[str, Any] | None = None
    source: dict[str, Any] | None = None


class PostHogEvent(_Open):
    """A raw PostHog event; person properties from `person_properties`, else `$set`."""

    uuid: str | None = None
    event: str = Field(min_length=1)
    distinct_id: str | int | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None
    person_properties: dict[str, Any] | None = None
    person_id: str | None = None


class SegmentCall(_Open):
    """A Segment / RudderStack call: `track` by its `event`; `identify` → `$identify`,
    `page` → `$pageview`, `screen` → `$screen`, `group` → `$groupidentify`, `alias` →
    `$create_alias`. `traits` (and `context.traits`) are person properties."""

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = Field(default=None, description="Required for `track`")
    userId: str | int | None = None
    anonymousId: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    name: str | None = None
    groupId: str | None = None
    previousId: str | None = None
    messageId: str | None = None
    timestamp: str | None = None


AnyEvent = PostHogWebhookBody | PostHogEvent | SegmentCall


class SegmentBatch(_Open):
    """Segment's batch envelope."""

    batch: list[AnyEvent] = Field(min_length=1)


IngestBody = AnyEvent | Annotated[list[AnyEvent], Field(min_length=1)] | SegmentBatch

# One event, for a field typed as a plain object (the pipeline parses it): the shapes above,
# whose schemas `app.api.openapi` adds to the description's components.
ONE_EVENT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"$ref": f"#/components/schemas/{shape.__name__}"}
        for shape in (PostHogWebhookBody, PostHogEvent, SegmentCall)
    ]
}
