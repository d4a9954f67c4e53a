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
from app.pipeline.filters import PropertyFilter
from app.pipeline.render import OverflowPolicy, TemplateConfigError, TemplateRenderer
from app.twilio.models import E164Number, MessagingServiceSid

MAX_THROTTLE_WINDOW = 31_536_000  # one year, in seconds


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


class DestinationSet:
    """All enabled destinations, indexed by event name so unrelated ones cost nothing."""

    def __init__(self, destinations: Iterable[Destination]) -> None:
        self._by_id: dict[str, Destination] = {}
        self._by_event: dict[str, list[Destination]] = {}
        self._every_event: list[Destination] = []
        for destination in destinations:
            self._by_id[destination.id] = destination
            if not destination.config.enabled:
                continue
            if destination.config.events is None:
                self._every_event.append(destination)
            else:
                for name in dict.fromkeys(destination.config.events):
                    self._by_event.setdefault(name, []).append(destination)
        self._order = {d: i for i, d in enumerate(self._by_id)}

    def __len__(self) -> int:
        return len(self._by_id)

    def configs(self) -> list[DestinationConfig]:
        """Every destination's configuration, in file order."""
        return [d.config for d in self._by_id.values()]

    def get(self, destination_id: str) -> Destination | None:
        """Any destination by id, enabled or not (for the test endpoint)."""
        return self._by_id.get(destination_id)

    def for_event(self, event_name: str) -> list[Destination]:
        """Enabled destinations whose `events` list admits `event_name`, in file order."""
        listed = self._by_event.get(event_name)
        if not listed:
            return self._every_event
        if not self._every_event:
            return listed
        return sorted([*listed, *self._every_event], key=lambda d: self._order[d.id])


def load_destinations(path: Path, renderer: TemplateRenderer) -> DestinationSet:
    """Read, validate and compile the destinations file, or raise `ConfigError`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
