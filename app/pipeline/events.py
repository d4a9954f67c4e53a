"""Stage 1: turn whatever an analytics tool POSTs into one `Event` shape.

Accepted shapes (a JSON object, or a JSON array of them for a batch):

- PostHog's HTTP-webhook destination body: ``{"event": {...}, "person": {...}, "groups": ...}``
- a raw PostHog event: ``{"uuid", "event", "distinct_id", "properties", "timestamp"}``
- a Segment / RudderStack ``track`` call: ``{"type": "track", "event", "userId", ...}``
- Segment's batch envelope ``{"batch": [...]}``

Shape detection is structural, so no sender needs to say which one it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with the input: where (dotted path) and what."""

    field: str
    problem: str


class InvalidPayload(Exception):
    """The request body is not an accepted event shape; carries every problem found."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


# Which accepted shape an event arrived in (a metrics label); "internal" for the events the
# service makes itself ($sms_status, $sms_inbound).
EventShape = Literal["posthog_webhook", "posthog_event", "segment_track", "internal"]


@dataclass(frozen=True, slots=True)
class Person:
    id: str | None = None
    name: str | None = None
    url: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """An analytics event, whatever shape it arrived in."""

    name: str
    uuid: str | None
    distinct_id: str | None
    properties: dict[str, Any]
    timestamp: str | None
    person: Person
    groups: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    elements_chain: str | None = None
    project: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    # What makes two POSTs "the same event": the sender's id, else a hash of the payload.
    identity: str = ""
    shape: EventShape = "internal"

    def template_context(self) -> dict[str, Any]:
        """The variables templates (`to`, `body`) see: PostHog's webhook names."""
        return {
            "event": {
                "uuid": self.uuid,
                "event": self.name,
                "distinct_id": self.distinct_id,
                "properties": self.properties,
                "timestamp": self.timestamp,
                "url": self.url,
                "elements_chain": self.elements_chain,
            },
            "person": {
                "id": self.person.id,
                "name": self.person.name,
                "url": self.person.url,
                "properties": self.person.properties,
            },
            "groups": self.groups,
            "project": self.project or {},
            "source": self.source or {},
        }

    def group_properties(self, group_type: str) -> dict[str, Any] | None:
        """Properties of the event's group of `group_type`, or None when it has none."""
        group = self.groups.get(group_type)
        if not isinstance(group, dict):
            return None
        props = group.get("properties")
        return props if isinstance(props, dict) else None


# --- wire models: pydantic gives us field-accurate errors for free -----------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _PostHogWebhookEvent(_Wire):
    uuid: str | None = None
    event: str = Field(min_length=1)
    distinct_id: str | int | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None
    elements_chain: str | None = None
    url: str | None = None


class _PostHogPerson(_Wire):
    id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    url: str | None = None


class _PostHogWebhook(_Wire):
    event: _PostHogWebhookEvent
    person: _PostHogPerson | None = None
    groups: dict[str, Any] | None = None
    project: dict[str, Any] | None = None
    source: dict[str, Any] | None = None


class _PostHogRawEvent(_Wire):
    uuid: str | None = None
    event: str = Field(min_length=1)
    distinct_id: str | int | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None
    person_properties: dict[str, Any] | None = None
    person_id: str | None = None


class _SegmentTrack(_Wire):
    type: Literal["track"]
    event: str = Field(min_length=1)
    userId: str | int | None = None
    anonymousId: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    messageId: str | None = None
    timestamp: str | None = None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _payload_hash(item: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _from_posthog_webhook(item: dict[str, Any]) -> Event:
    wire = _PostHogWebhook.model_validate(item)
    ev, person = wire.event, wire.person or _PostHogPerson()
    return Event(
        name=ev.event,
        uuid=ev.uuid,
        distinct_id=_str_or_none(ev.distinct_id),
        properties=ev.properties,
        timestamp=ev.timestamp,
        person=Person(id=person.id, name=person.name, url=person.url, properties=person.properties),
        groups=wire.groups or {},
        url=ev.url,
        elements_chain=ev.elements_chain,
        project=wire.project,
        source=wire.source,
        identity=ev.uuid or _payload_hash(item),
        shape="posthog_webhook",
    )


def _from_posthog_raw(item: dict[str, Any]) -> Event:
    wire = _PostHogRawEvent.model_validate(item)
    # Person properties: the export's `person_properties`, else what the event `$set`s.
    person_props = wire.person_properties
    if person_props is None:
        set_props = wire.properties.get("$set")
        person_props = set_props if isinstance(set_props, dict) else {}
    groups = (
        {
            group_type: {"key": key, "properties": {}}
            for group_type, key in (wire.properties.get("$groups") or {}).items()
        }
        if isinstance(wire.properties.get("$groups"), dict)
        else {}
    )
    return Event(
        name=wire.event,
        uuid=wire.uuid,
        distinct_id=_str_or_none(wire.distinct_id),
        properties=wire.properties,
        timestamp=wire.timestamp,
        person=Person(id=wire.person_id, properties=person_props),
        groups=groups,
        url=None,
        identity=wire.uuid or _payload_hash(item),
        shape="posthog_event",
    )


def _from_segment_track(item: dict[str, Any]) -> Event:
    wire = _SegmentTrack.model_validate(item)
    traits = wire.context.get("traits")
    distinct_id = _str_or_none(wire.userId) or wire.anonymousId
    return Event(
        name=wire.event,
        uuid=wire.messageId,
        distinct_id=distinct_id,
        properties=wire.properties,
        timestamp=wire.timestamp,
        person=Person(id=distinct_id, properties=traits if isinstance(traits, dict) else {}),
        identity=wire.messageId or _payload_hash(item),
        shape="segment_track",
    )


def _detect(item: dict[str, Any]) -> Any:
    if isinstance(item.get("event"), dict):
        return _from_posthog_webhook
    if "type" in item:
        return _from_segment_track
    return _from_posthog_raw


def _loc_to_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def parse_events(payload: Any, max_batch: int) -> list[Event]:
    """Normalize a decoded JSON body into events.

    Raises `InvalidPayload` naming every offending field (``[3].event.event``); a batch is
    all-or-nothing so that a sender's retry never half-applies.
    """
    batch = isinstance(payload, list)
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        payload, batch = payload["batch"], True
    items: list[Any] = payload if batch else [payload]
    if batch and not items:
        raise InvalidPayload([FieldProblem("body", "empty batch")])
    if len(items) > max_batch:
        raise InvalidPayload(
            [FieldProblem("body", f"batch of {len(items)} events is over the limit of {max_batch}")]
        )
    events: list[Event] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]" if batch else ""
        if not isinstance(item, dict):
            problems.append(FieldProblem(prefix or "body", "expected a JSON object (an event)"))
            continue
        try:
            events.append(_detect(item)(item))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                problems.append(FieldProblem(_loc_to_path(prefix, err["loc"]), err["msg"]))
    if problems:
        raise InvalidPayload(problems)
    return events
