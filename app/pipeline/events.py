"""Stage 1: turn whatever an analytics tool POSTs into one `Event` shape.

Accepted shapes (a JSON object, or a JSON array of them for a batch):

- PostHog's HTTP-webhook destination body: ``{"event": {...}, "person": {...}, "groups": ...}``
- a raw PostHog event: ``{"uuid", "event", "distinct_id", "properties", "timestamp"}``
- a Segment / RudderStack call of any type (``track``, ``identify``, ``page``, ``screen``,
  ``group``, ``alias``), named as PostHog names its own events (`SEGMENT_EVENT_NAMES`)
- Segment's batch envelope ``{"batch": [...]}``

Shape detection is structural, so no sender needs to say which one it is. A batch is
judged event by event: `parse_events` returns the valid events and, for each invalid
one, where it sits and what is wrong with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
    properties: dict[str, Any] | None = None
    timestamp: str | None = None
    elements_chain: str | None = None
    url: str | None = None


class _PostHogPerson(_Wire):
    id: str | None = None
    properties: dict[str, Any] | None = None
    name: str | None = None
    url: str | None = None


class _PostHogWebhook(_Wire):
    event: _PostHogWebhookEvent
    # null for events captured with `$process_person_profile: false`
    person: _PostHogPerson | None = None
    groups: dict[str, Any] | None = None
    project: dict[str, Any] | None = None
    source: dict[str, Any] | None = None


class _PostHogRawEvent(_Wire):
    uuid: str | None = None
    event: str = Field(min_length=1)
    distinct_id: str | int | None = None
    properties: dict[str, Any] | None = None
    timestamp: str | None = None
    person_properties: dict[str, Any] | None = None
    person_id: str | None = None


SegmentCallType = Literal["track", "identify", "page", "screen", "group", "alias"]

SEGMENT_EVENT_NAMES: dict[str, str] = {
    "identify": "$identify",
    "page": "$pageview",
    "screen": "$screen",
    "group": "$groupidentify",
    "alias": "$create_alias",
}
"""Event names of the Segment / RudderStack calls other than `track`: PostHog's own."""

SEGMENT_GROUP_TYPE = "group"
"""Group type of a Segment `group` call's group (Segment groups carry no type)."""


class _SegmentCall(_Wire):
    """Fields common to every Segment / RudderStack call (the rest is ignored: `channel`,
    `integrations`, `sentAt`, `receivedAt`, `rudderId`, `request_ip`, `version`, …)."""

    type: SegmentCallType
    userId: str | int | None = None
    anonymousId: str | int | None = None
    messageId: str | None = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    context: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    name: str | None = None  # page, screen
    category: str | None = None  # page
    groupId: str | int | None = None  # group
    previousId: str | int | None = None  # alias


class _SegmentTrack(_SegmentCall):
    event: str = Field(min_length=1)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _payload_hash(item: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _dict_or_empty(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def person_properties_from_set(properties: dict[str, Any]) -> dict[str, Any]:
    """Person properties of an event that comes without a person profile: what it sets.

    PostHog's rule, for its webhook body with ``"person": null`` and for its raw event
    alike: ``$set_once`` then ``$set`` (which wins where both name a property).
    """
    set_once = properties.get("$set_once")
    set_props = properties.get("$set")
    if not isinstance(set_once, dict) or not set_once:
        return set_props if isinstance(set_props, dict) else {}
    return {**set_once, **_dict_or_empty(set_props)}


def _from_posthog_webhook(item: dict[str, Any]) -> Event:
    wire = _PostHogWebhook.model_validate(item)
    ev = wire.event
    properties = ev.properties or {}
    if wire.person is None:
        person = Person(properties=person_properties_from_set(properties))
    else:
        person = Person(
            id=wire.person.id,
            name=wire.person.name,
            url=wire.person.url,
            properties=wire.person.properties or {},
        )
    return Event(
        name=ev.event,
        uuid=ev.uuid,
        distinct_id=_str_or_none(ev.distinct_id),
        properties=properties,
        timestamp=ev.timestamp,
        person=person,
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
    properties = wire.properties or {}
    # Person properties: the export's `person_properties`, else what the event sets.
    person_props = wire.person_properties
    if person_props is None:
        person_props = person_properties_from_set(properties)
    raw_groups = properties.get("$groups")
    groups = (
        {group_type: {"key": key, "properties": {}} for group_type, key in raw_groups.items()}
        if isinstance(raw_groups, dict)
        else {}
    )
    return Event(
        name=wire.event,
        uuid=wire.uuid,
        distinct_id=_str_or_none(wire.distinct_id),
        properties=properties,
        timestamp=wire.timestamp,
        person=Person(id=wire.person_id, properties=person_props),
        groups=groups,
        url=None,
        identity=wire.uuid or _payload_hash(item),
        shape="posthog_event",
    )


def _from_segment(item: dict[str, Any]) -> Event:
    wire = (_SegmentTrack if item.get("type") == "track" else _SegmentCall).model_validate(item)
    distinct_id = _str_or_none(wire.userId) or _str_or_none(wire.anonymousId)
    context = wire.context or {}
    properties = wire.properties or {}
    # Traits describe the person, except a `group` call's, which describe the group.
    person_props = _dict_or_empty(context.get("traits"))
    groups: dict[str, Any] = {}
    if wire.type == "group":
        group_key = _str_or_none(wire.groupId)
        group_traits = wire.traits or {}
        groups = {SEGMENT_GROUP_TYPE: {"key": group_key, "properties": group_traits}}
        properties = {
            **properties,
            "$group_type": SEGMENT_GROUP_TYPE,
            "$group_key": group_key,
            "$group_set": group_traits,
        }
    elif wire.traits:
        person_props = {**person_props, **wire.traits}
    if wire.type in ("page", "screen"):
        named = {"name": wire.name} if wire.name is not None else {}
        if wire.category is not None:
            named["category"] = wire.category
        properties = {**properties, **named}
    elif wire.type == "alias":
        properties = {**properties, "alias": _str_or_none(wire.previousId)}
    name = wire.event if isinstance(wire, _SegmentTrack) else SEGMENT_EVENT_NAMES[wire.type]
    return Event(
        name=name,
        uuid=wire.messageId,
        distinct_id=distinct_id,
        properties=properties,
        timestamp=wire.timestamp or wire.originalTimestamp,
        person=Person(id=distinct_id, properties=person_props),
        groups=groups,
        identity=wire.messageId or _payload_hash(item),
        shape="segment_track",
    )


def _detect(item: dict[str, Any]) -> Callable[[dict[str, Any]], Event]:
    if isinstance(item.get("event"), dict):
        return _from_posthog_webhook
    if "type" in item:
        return _from_segment
    return _from_posthog_raw


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


# Per invalid event, the first problems are enough to fix it; a hostile event must not
# make the answer grow with its size.
MAX_PROBLEMS_PER_EVENT = 10


def parse_event(item: Any) -> Event:
    """One event of any accepted shape, or `InvalidPayload` naming every offending field."""
    if not isinstance(item, dict):
        raise InvalidPayload([FieldProblem("body", "expected a JSON object (an event)")])
    try:
        return _detect(item)(item)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)[:MAX_PROBLEMS_PER_EVENT]
        raise InvalidPayload(
            [FieldProblem(_loc_to_path(err["loc"]), err["msg"]) for err in errors]
        ) from None


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An invalid event of a batch: its position in the request and what is wrong."""

    index: int
    problems: list[FieldProblem]


@dataclass(frozen=True, slots=True)
class ParsedEvents:
    """A request's valid events (with their positions in it) and its invalid ones."""

    events: list[Event]
    indexes: list[int]
    rejected: list[RejectedEvent]


def parse_events(payload: Any, max_batch: int) -> ParsedEvents:
    """Normalize a decoded JSON body (one event, an array, or ``{"batch": [...]}``).

    A batch is judged event by event: the valid ones are returned, each invalid one is
    listed with its index and problems. `InvalidPayload` only when the body itself is
    unusable: not an object or array, an empty batch, more than `max_batch` events, or a
    single (non-batch) event that is invalid.
    """
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        payload = payload["batch"]
    if not isinstance(payload, list):
        return ParsedEvents([parse_event(payload)], [0], [])
    if not payload:
        raise InvalidPayload([FieldProblem("body", "empty batch")])
    if len(payload) > max_batch:
        raise InvalidPayload(
            [
                FieldProblem(
                    "body", f"batch of {len(payload)} events is over the limit of {max_batch}"
                )
            ]
        )
    events: list[Event] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(payload):
        try:
            events.append(parse_event(item))
        except InvalidPayload as exc:
            rejected.append(RejectedEvent(index, exc.problems))
            continue
        indexes.append(index)
    return ParsedEvents(events, indexes, rejected)
