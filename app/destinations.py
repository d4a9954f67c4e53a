"""Destinations: which events become which SMS, declared in a YAML file.

`load_destinations` validates the whole file up front and compiles every template and
filter once, so a bad file stops the service at start-up (naming the file, the
destination and the field) instead of failing event by event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.durations import Seconds
from app.pipeline.events import Event
from app.pipeline.filters import PropertyFilter, exact_key
from app.pipeline.recipients import E164Number
from app.pipeline.render import OverflowPolicy, TemplateConfigError, TemplateRenderer
from app.twilio.models import MessagingServiceSid

MAX_THROTTLE_WINDOW = 31_536_000  # one year, in seconds

# libyaml's safe loader when PyYAML has it (faster, and a 1,000-destination file leaves
# ~1 MB less behind in the process); the pure-Python one otherwise. Both are safe loaders.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(Exception):
    """The destinations file is unusable; the message names file, destination and field."""


class ThrottleConfig(BaseModel):
    """At most one message per recipient per `window` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Seconds
    scope: Literal["destination", "global"] = "destination"

    @field_validator("window")
    @classmethod
    def _window_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_THROTTLE_WINDOW:
            raise ValueError(
                f"must be between 1 second and 1 year ({MAX_THROTTLE_WINDOW} s), got {value}"
            )
        return value


class DestinationConfig(BaseModel):
    """One destination as written in the YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = ""
    enabled: bool = True
    mode: Literal["live", "test"] = "live"
    events: list[str] | None = None
    filters: list[PropertyFilter] = Field(default_factory=list)
    to: str = "{{ person.properties.phone }}"
    body: str | None = None
    template: str | None = None
    from_number: E164Number | None = Field(default=None, alias="from")
    messaging_service_sid: MessagingServiceSid | None = None
    throttle: ThrottleConfig | None = None
    on_overflow: OverflowPolicy = "reject"
    delay: Seconds | None = Field(default=None, ge=1, le=MAX_THROTTLE_WINDOW)
    send_at: str | None = None  # a template rendering an ISO 8601 time

    @model_validator(mode="after")
    def _one_of_each(self) -> DestinationConfig:
        if (self.body is None) == (self.template is None):
            raise ValueError("set exactly one of 'body' (inline template) or 'template' (a file)")
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of 'from' or 'messaging_service_sid'")
        if self.delay is not None and self.send_at is not None:
            raise ValueError("set at most one of 'delay' or 'send_at'")
        return self


class DestinationsFile(BaseModel):
    """The top level of the YAML file."""

    model_config = ConfigDict(extra="forbid")

    destinations: list[DestinationConfig]


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination ready to run: its config plus compiled templates."""

    config: DestinationConfig
    to_template: jinja2.Template
    body_template: jinja2.Template
    send_at_template: jinja2.Template | None = None

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(frozen=True, slots=True)
class _ExactIndex:
    """Destinations whose chosen `exact` filter reads one property, by the values it accepts.

    Every list is in file order.
    """

    reader: PropertyFilter  # one of their filters: all read the same property of an event
    by_value: dict[str, list[Destination]]
    every: list[Destination]

    def admitted(self, event: Event) -> list[Destination]:
        """The destinations whose filter could hold for `event`: one dict lookup.

        A property with no `exact_key` (missing, null, a container) prunes nothing.
        """
        key = exact_key(self.reader.property_of(event))
        if key is None:
            return self.every
        return self.by_value.get(key, [])


@dataclass(frozen=True, slots=True)
class _EventCandidates:
    """The destinations one event name reaches, with their exact filters indexed.

    `unindexed` (no `exact` filter) are always candidates; the others only when their
    filter's index admits the event. `every` is all of them, in file order.
    """

    unindexed: list[Destination]
    indexes: list[_ExactIndex]
    every: list[Destination]
    # Set when one index covers them all: its answer is the candidates, no merging needed.
    only_index: _ExactIndex | None


def _first_exact_filter(config: DestinationConfig) -> tuple[PropertyFilter, frozenset[str]] | None:
    """The destination's first `exact` filter and the folded values it accepts, if any."""
    # Filters are ANDed, so any one `exact` filter failing rules the destination out.
    for property_filter in config.filters:
        values = property_filter.exact_values()
        if values is not None:
            return property_filter, values
    return None


def _index_candidates(destinations: list[Destination]) -> _EventCandidates:
    """Group `destinations` (in file order) by the property their first `exact` filter reads."""
    unindexed: list[Destination] = []
    indexes: dict[tuple[str, str | None, str], _ExactIndex] = {}
    for destination in destinations:
        found = _first_exact_filter(destination.config)
        if found is None:
            unindexed.append(destination)
            continue
        exact, values = found
        index = indexes.setdefault(exact.property_address(), _ExactIndex(exact, {}, []))
        index.every.append(destination)
        for value in values:
            index.by_value.setdefault(value, []).append(destination)
    only_index = next(iter(indexes.values())) if len(indexes) == 1 and not unindexed else None
    return _EventCandidates(unindexed, list(indexes.values()), destinations, only_index)


class DestinationSet:
    """All enabled destinations, indexed so that ones an event cannot match cost nothing.

    The index is by event name, then by the values of each destination's first `exact`
    filter. It only prunes destinations that would surely fail; every candidate is still
    evaluated in full.
    """

    def __init__(self, destinations: Iterable[Destination]) -> None:
        self._by_id: dict[str, Destination] = {}
        listed: dict[str, list[Destination]] = {}
        every_event: list[Destination] = []
        for destination in destinations:
            self._by_id[destination.id] = destination
            if not destination.config.enabled:
                continue
            if destination.config.events is None:
                every_event.append(destination)
            else:
                for name in dict.fromkeys(destination.config.events):
                    listed.setdefault(name, []).append(destination)
        self._order = {destination_id: i for i, destination_id in enumerate(self._by_id)}
        # Destinations without `events` join every name's list, so merge them in file order.
        self._by_event: dict[str, _EventCandidates] = {
            name: _index_candidates(
                sorted([*named, *every_event], key=lambda d: self._order[d.id])
                if every_event
                else named
            )
            for name, named in listed.items()
        }
        self._unlisted_event = _index_candidates(every_event)

    def __len__(self) -> int:
        return len(self._by_id)

    def configs(self) -> list[DestinationConfig]:
        """Every destination's configuration, in file order."""
        return [d.config for d in self._by_id.values()]

    def get(self, destination_id: str) -> Destination | None:
        """Any destination by id, enabled or not (for the test endpoint)."""
        return self._by_id.get(destination_id)

    def candidates(self, event: Event) -> list[Destination]:
        """Enabled destinations `event` might match, in file order (do not mutate the list).

        Those left out surely fail: their `events` list excludes the event's name, or their
        first `exact` filter rejects the event's (scalar) property value.
        """
        reached = self._by_event.get(event.name, self._unlisted_event)
        if reached.only_index is not None:
            return reached.only_index.admitted(event)  # the common case: already in file order
        if not reached.indexes:
            return reached.every
        merged = [*reached.unindexed]
        for index in reached.indexes:
            merged.extend(index.admitted(event))
        return sorted(merged, key=lambda d: self._order[d.id])


def load_destinations(path: Path, renderer: TemplateRenderer) -> DestinationSet:
    """Read, validate and compile the destinations file, or raise `ConfigError`."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (set SMS_DESTINATIONS_FILE)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from None
    if raw is None:
        raw = {"destinations": []}
    try:
        parsed = DestinationsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe_errors(path, raw, exc)) from None

    seen: set[str] = set()
    compiled: list[Destination] = []
    for config in parsed.destinations:
        where = f"{path}: destination '{config.id}'"
        if config.id in seen:
            raise ConfigError(f"{where}: id: duplicate id")
        seen.add(config.id)
        try:
            to_template = renderer.compile(config.to)
        except TemplateConfigError as exc:
            raise ConfigError(f"{where}: to: {exc}") from None
        try:
            body_template = (
                renderer.compile(config.body)
                if config.body is not None
                else renderer.load(str(config.template))
            )
        except TemplateConfigError as exc:
            raise ConfigError(f"{where}: {'body' if config.body else 'template'}: {exc}") from None
        try:
            send_at_template = renderer.compile(config.send_at) if config.send_at else None
        except TemplateConfigError as exc:
            raise ConfigError(f"{where}: send_at: {exc}") from None
        compiled.append(Destination(config, to_template, body_template, send_at_template))
    return DestinationSet(compiled)


def _describe_errors(path: Path, raw: Any, exc: ValidationError) -> str:
    lines = [f"{path}: invalid destinations file"]
    items = raw.get("destinations") if isinstance(raw, dict) else None
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "destinations" and isinstance(loc[1], int):
            index = loc[1]
            item = items[index] if isinstance(items, list) and index < len(items) else None
            ident = item.get("id") if isinstance(item, dict) else None
            where = f"destination '{ident}'" if ident else f"destination #{index + 1}"
            loc = loc[2:]
        field = ".".join(str(part) for part in loc) or "(destination)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where + ': ' if where else ''}{field}: {message}")
    return "\n".join(lines)
