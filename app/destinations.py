"""Destinations: which events become which SMS, declared in a YAML file.

`load_destinations` validates the whole file up front and compiles every template and
filter once, so a bad file stops the service at start-up, listing every problem with its
line, destination and field (`smsdest check-config` reports the same), instead of
failing event by event.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import jinja2
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from app.durations import Seconds
from app.guard import (
    DEFAULT_PER_BLOCK,
    DEFAULT_PER_COUNTRY,
    NO_CAPS,
    CapRule,
    Caps,
    CapsConfig,
    VelocityConfig,
    VelocityLimit,
    caps_for,
    velocity_limits,
)
from app.pipeline.budget import BudgetConfig
from app.pipeline.events import Event
from app.pipeline.filters import PropertyFilter, exact_key
from app.pipeline.quiet_hours import QuietHoursConfig, zone_named
from app.pipeline.recipients import E164Number, parse_countries
from app.pipeline.render import OverflowPolicy, TemplateConfigError, TemplateRenderer
from app.senders import SenderConfig, check_sender_key, declared_rate
from app.sms.message import MAX_MEDIA, Channel
from app.twilio.models import ContentSid, MessagingServiceSid

if TYPE_CHECKING:
    from app.settings import Settings

MAX_THROTTLE_WINDOW = 31_536_000  # one year, in seconds
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # ids and cap categories
UTC_ZONE = ZoneInfo("UTC")

# libyaml's safe loader when PyYAML has it (faster, and a 1,000-destination file leaves
# ~1 MB less behind in the process); the pure-Python one otherwise. Both are safe loaders.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, but a value it cannot build (a date like 2026-13-45, an integer of
    5,000 digits) is a YAML error at that value's line instead of a bare ValueError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).split(";")[0]  # Python's own advice follows a ';'
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {reason}", node.start_mark
            ) from None


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in the destinations file: where (line, destination, field) and what."""

    line: int | None  # 1-based line in the YAML file; None when the file has no such place
    destination: str | None  # "'alerts'", or "#3" for one without a usable id
    field: str  # dotted path inside the destination (or the file); "" for the whole of it
    message: str

    def describe(self, path: Path) -> str:
        """``file:line: destination 'id': field: message``, the way compilers report."""
        where = f"{path}:{self.line}" if self.line is not None else str(path)
        parts = [where]
        if self.destination is not None:
            parts.append(f"destination {self.destination}")
        if self.field:
            parts.append(self.field)
        return ": ".join([*parts, self.message])


class ConfigError(Exception):
    """The destinations file is unusable; every problem names file, line, destination, field."""

    def __init__(self, path: Path, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: p.line or 0)
        super().__init__(self._report())

    def _report(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].describe(self.path)
        lines = [f"{self.path}: {len(self.problems)} problems"]
        lines.extend(f"  {problem.describe(self.path)}" for problem in self.problems)
        return "\n".join(lines)


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

    id: str = Field(pattern=_NAME_PATTERN)
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
    # Unset: the service's defaults (SMS_ALLOWED_COUNTRIES, SMS_DEFAULT_VALIDITY,
    # SMS_QUIET_HOURS); `quiet_hours: false` turns the service's quiet hours off here.
    countries: frozenset[str] | None = None
    validity: Seconds | None = Field(default=None, ge=1, le=MAX_THROTTLE_WINDOW)
    quiet_hours: QuietHoursConfig | Literal[False] | None = None
    # MMS and WhatsApp: media URL templates, the channel, a Content template and its
    # variables (each value a template).
    channel: Channel = "sms"
    media_url: list[str] = Field(default_factory=list, max_length=MAX_MEDIA)
    content_sid: ContentSid | None = None
    content_variables: dict[str, str] | None = Field(default=None, max_length=100)
    # The pumping guard's limits (unset: SMS_VELOCITY_PER_BLOCK/_PER_COUNTRY; false: off)
    # and the frequency caps its texts count against (the file's `caps:`).
    velocity: VelocityConfig | Literal[False] | None = None
    category: str | None = Field(default=None, pattern=_NAME_PATTERN)
    # At most so many segments (or so much money) a day; over it: `over_budget`, paused
    # until the budget day ends (SMS_BUDGET_TIMEZONE's midnight) or until resumed.
    budget: BudgetConfig | None = None

    @field_validator("media_url")
    @classmethod
    def _one_whatsapp_media(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("channel") == "whatsapp" and len(value) > 1:
            raise ValueError("a WhatsApp message carries at most one media URL")
        return value

    @field_validator("countries", mode="before")
    @classmethod
    def _countries(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(code, str) for code in value):
            return parse_countries(value)
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> DestinationConfig:
        problems = _choice_problems(
            lambda key: getattr(self, _ATTRIBUTES.get(key, key)) is not None
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


# How pydantic names `quiet_hours: false` (or `velocity: false`) among the field's choices,
# and the models tried beside it, in an error's place.
_QUIET_HOURS_OFF = "literal[False]"
_UNION_MODELS = ("QuietHoursConfig", "VelocityConfig")

# The file's `caps:` (category → rules or "exempt").
_CAPS = TypeAdapter(
    dict[
        Annotated[str, StringConstraints(pattern=_NAME_PATTERN)],
        list[CapRule] | Literal["exempt"],
    ]
)

# YAML keys whose attribute has another name (`from` is a Python keyword).
_ATTRIBUTES = {"from": "from_number"}


def _choice_problems(given: Callable[[str], bool]) -> list[str]:
    """The field choices a destination breaks; `given(key)` says whether YAML key is set.

    Checked on the validated model, and on the raw mapping when other fields are invalid
    (pydantic skips the model check then), so a file's problems all show in one pass.
    """
    problems = []
    if given("content_sid"):
        if given("body") or given("template"):
            problems.append("set 'content_sid' or a 'body'/'template', not both")
    elif given("body") == given("template"):
        problems.append("set exactly one of 'body' (inline template) or 'template' (a file)")
    if given("content_variables") and not given("content_sid"):
        problems.append("'content_variables' fills a Content template: set 'content_sid'")
    if given("from") == given("messaging_service_sid"):
        problems.append("set exactly one of 'from' or 'messaging_service_sid'")
    if given("delay") and given("send_at"):
        problems.append("set at most one of 'delay' or 'send_at'")
    return problems


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a destination inherits from the service's settings when it does not say."""

    countries: frozenset[str] = frozenset({"US"})  # SMS_DEFAULT_REGION's default
    validity: int | None = None
    quiet_hours: QuietHoursConfig | None = None
    timezone: str = "UTC"
    velocity_per_block: int = DEFAULT_PER_BLOCK
    velocity_per_country: int = DEFAULT_PER_COUNTRY
    budget_timezone: str = "UTC"

    @classmethod
    def of(cls, settings: Settings) -> Defaults:
        """The defaults the service's settings give."""
        return cls(
            settings.allowed_country_set,
            settings.default_validity,
            settings.quiet_hours,
            settings.default_timezone,
            settings.velocity_per_block,
            settings.velocity_per_country,
            budget_timezone=settings.budget_timezone,
        )


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination ready to run: its config plus compiled templates, with the service's
    defaults applied (`countries`, `validity`, `quiet_hours`)."""

    config: DestinationConfig
    to_template: jinja2.Template
    body_template: jinja2.Template
    send_at_template: jinja2.Template | None = None
    countries: frozenset[str] = frozenset({"*"})
    countries_from: str = "countries"  # where `countries` comes from, for the detail
    validity: int | None = None
    quiet_hours: QuietHoursConfig | None = None
    quiet_timezone: jinja2.Template | None = None  # `quiet_hours.timezone`, compiled
    default_zone: ZoneInfo = UTC_ZONE  # SMS_DEFAULT_TIMEZONE
    media_templates: tuple[jinja2.Template, ...] = ()  # `media_url`, compiled
    content_variable_templates: tuple[tuple[str, jinja2.Template], ...] = ()
    velocity: tuple[VelocityLimit, ...] = ()  # its own limits, then the service's
    caps: Caps = NO_CAPS
    budget_zone: ZoneInfo = UTC_ZONE  # SMS_BUDGET_TIMEZONE: where a budget day ends

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

    def __init__(
        self, destinations: Iterable[Destination], senders: dict[str, float] | None = None
    ) -> None:
        # `senders:`: each declared sender's rate, in segments per second.
        self.sender_rates: dict[str, float] = dict(senders or {})
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

    def listening(self, event_name: str) -> list[Destination]:
        """Enabled destinations whose `events` include `event_name` (or who have none)."""
        return self._by_event.get(event_name, self._unlisted_event).every

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


# A file whose YAML aliases expand past this many values is refused before validation (a
# "billion laughs" file would otherwise keep validation busy for ever).
MAX_EXPANDED_VALUES = 1_000_000

_Path = tuple[str | int, ...]
_FILE_KEYS = ("destinations", "caps", "senders")  # the file's top-level keys


def load_destinations(
    path: Path, renderer: TemplateRenderer, defaults: Defaults | None = None
) -> DestinationSet:
    """Read, validate and compile the destinations file, or raise `ConfigError`.

    Every problem in the file is found in one pass (YAML structure, schema, template
    syntax, missing template files, duplicate ids and keys) and reported with its line;
    the service at start-up and `smsdest check-config` both call this, so they report the
    same.
    """
    data, walk = _read_yaml(path)
    checker = _Checker(renderer, walk.lines, defaults or Defaults())
    compiled = checker.check_file(data)
    senders = checker.check_senders(data)
    checker.add_keys_given_twice(walk.twice)
    if checker.problems:
        raise ConfigError(path, checker.problems)
    return DestinationSet(compiled, senders)


def _read_yaml(path: Path) -> tuple[Any, _NodeLines]:
    """The file's data, and the lines of its keys and list items (and keys given twice).

    Raises `ConfigError` when there is nothing to validate (unreadable, not YAML, too big).
    """

    def unusable(message: str, line: int | None = None) -> ConfigError:
        return ConfigError(path, [ConfigProblem(line, None, "", message)])

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise unusable("file not found (set SMS_DESTINATIONS_FILE)") from None
    except UnicodeDecodeError as exc:
        raise unusable(f"not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise unusable(f"cannot read the file: {exc.strerror or exc}") from None
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, _NodeLines(None)
        # Lines are read before construction: it rewrites merge keys (`<<`) in the nodes.
        walk = _NodeLines(node)
        if walk.values > MAX_EXPANDED_VALUES:
            raise unusable(
                f"the file expands to over {MAX_EXPANDED_VALUES:,} values (YAML aliases): refused"
            )
        return loader.construct_document(node), walk
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        raise unusable(f"not valid YAML: {detail}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise unusable(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise unusable("not usable YAML: nested too deeply") from None
    finally:
        loader.dispose()


class _NodeLines:
    """Walks a composed YAML document: the line of each path, duplicate keys, its size."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[_Path, int] = {}
        # (path of the key, its line, the line where it was first given)
        self.twice: list[tuple[_Path, int, int]] = []
        self.values = 0  # values visited, aliases expanded: stops past MAX_EXPANDED_VALUES
        if root is not None:
            self.lines[()] = root.start_mark.line + 1
            self.visit(root, ())

    def visit(self, node: yaml.Node, path: _Path) -> None:
        self.values += 1
        if self.values > MAX_EXPANDED_VALUES:
            return
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines.setdefault((*path, index), item.start_mark.line + 1)
                self.visit(item, (*path, index))
        elif isinstance(node, yaml.MappingNode):
            first_seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue  # a merge key's fields keep the lines of the mapping they are in
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in first_seen:  # PyYAML would silently keep the last one
                    self.twice.append(((*path, key), line, first_seen[key]))
                first_seen.setdefault(key, line)
                self.lines.setdefault((*path, key), line)
                self.visit(value_node, (*path, key))


class _Checker:
    """Validates a whole file, collecting every problem instead of stopping at the first."""

    def __init__(
        self, renderer: TemplateRenderer, lines: dict[_Path, int], defaults: Defaults
    ) -> None:
        self.renderer = renderer
        self.defaults = defaults
        self.lines = lines
        self.problems: list[ConfigProblem] = []
        self.labels: dict[int, str] = {}  # destination index -> how messages name it
        self.caps: CapsConfig = {}

    def line_of(self, path: _Path) -> int | None:
        """The line of `path`, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def add(self, path: _Path, destination: str | None, field: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.line_of(path), destination, field, message))

    def check_file(self, data: Any) -> list[Destination]:
        """Every destination that compiled; the problems of the others are in `problems`."""
        if data is None:
            return []
        if not isinstance(data, dict):
            self.add(
                (), None, "", f"must be a mapping with a 'destinations' list, got {_kind(data)}"
            )
            return []
        for key in data:
            if key not in _FILE_KEYS:
                self.add((key,), None, str(key), _unknown_field(str(key), list(_FILE_KEYS)))
        self.caps = self.check_caps(data.get("caps"))
        items = data.get("destinations")
        if items is None:
            return []  # `destinations:` with nothing under it: no destinations
        if not isinstance(items, list):
            self.add(("destinations",), None, "destinations", f"must be a list, got {_kind(items)}")
            return []
        compiled: list[Destination] = []
        first_line: dict[str, int | None] = {}
        for index, item in enumerate(items):
            path: _Path = ("destinations", index)
            raw_id = item.get("id") if isinstance(item, dict) else None
            label = f"'{raw_id}'" if isinstance(raw_id, str) and raw_id else f"#{index + 1}"
            self.labels[index] = label
            if isinstance(raw_id, str):
                if raw_id in first_line:
                    self.add(
                        (*path, "id"),
                        label,
                        "id",
                        f"duplicate id (first on line {first_line[raw_id]})",
                    )
                else:
                    first_line[raw_id] = self.line_of((*path, "id"))
            destination = self.check_destination(item, path, label)
            if destination is not None:
                compiled.append(destination)
        return compiled

    def check_senders(self, data: Any) -> dict[str, float]:
        """`senders:`, each sender's rate (segments per second); problems are added."""
        items = data.get("senders") if isinstance(data, dict) else None
        if items is None:
            return {}
        if not isinstance(items, dict):
            self.add(("senders",), None, "senders", f"must be a mapping, got {_kind(items)}")
            return {}
        rates: dict[str, float] = {}
        for sender, entry in items.items():
            path: _Path = ("senders", sender)
            field = f"senders.{sender}"
            problem = check_sender_key(str(sender))
            if problem is not None:
                self.add(path, None, field, problem)
                continue
            if isinstance(entry, int | float) and not isinstance(entry, bool):
                entry = {"rate": entry}  # `"+14155550100": 10`, the short form
            try:
                config = SenderConfig.model_validate(entry)
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    loc = error["loc"]
                    message = (
                        _unknown_field(str(loc[-1]), list(SenderConfig.model_fields))
                        if error["type"] == "extra_forbidden"
                        else _message(error)
                    )
                    name = ".".join([field, *(str(part) for part in loc)])
                    self.add((*path, *loc), None, name, message)
                continue
            rates[str(sender)] = declared_rate(config, str(sender))
        return rates

    def check_caps(self, raw: Any) -> CapsConfig:
        """The file's `caps:` ({} when absent or invalid: its problems are reported)."""
        if raw is None:
            return {}
        try:
            return _CAPS.validate_python(raw)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                # Pydantic names the union member tried and the dict key's check; not the file.
                loc = tuple(p for p in error["loc"] if p not in ("[key]", "list[CapRule]"))
                if "literal['exempt']" in loc:
                    continue
                message = _message(error)
                if error["type"] == "string_pattern_mismatch":
                    message = "a category name is 1-64 letters, digits, '_', '.' or '-'"
                elif len(loc) == 1 and error["type"] == "list_type":
                    got = _kind(error["input"])
                    message = f"must be a list of {{texts, per}} or 'exempt', got {got}"
                self.add(("caps", *loc), None, ".".join(map(str, ("caps", *loc))), message)
            return {}

    def add_keys_given_twice(self, twice: list[tuple[_Path, int, int]]) -> None:
        """Report each key given twice in one mapping, by destination where it is in one."""
        for key_path, line, first in twice:
            destination, inner = None, key_path
            if len(key_path) > 2 and key_path[0] == "destinations" and isinstance(key_path[1], int):
                destination, inner = self.labels.get(key_path[1]), key_path[2:]
            field = ".".join(str(part) for part in inner)
            self.problems.append(
                ConfigProblem(line, destination, field, f"given twice (first on line {first})")
            )

    def check_destination(self, item: Any, path: _Path, label: str) -> Destination | None:
        """Validate and compile one destination; templates are compiled even when the rest
        of it is invalid, so that their problems are reported in the same pass."""
        config: DestinationConfig | None = None
        try:
            config = DestinationConfig.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                if _QUIET_HOURS_OFF in error["loc"]:
                    continue  # `quiet_hours`' other choice (false): one message is enough
                # Pydantic names the union member tried; the file does not.
                loc = tuple(part for part in error["loc"] if part not in _UNION_MODELS)
                if not loc and error["type"] == "value_error":
                    continue  # the choices: checked on the raw mapping below
                field = ".".join(str(part) for part in loc)
                message = _message(error)
                if loc in (("quiet_hours",), ("velocity",)):
                    message = message.replace("(key: value)", "(key: value) or false")
                self.add((*path, *loc), label, field, message)
            if isinstance(item, dict):
                for message in _choice_problems(lambda key: item.get(key) is not None):
                    self.add(path, label, "", message)
        raw = item if isinstance(item, dict) else {}
        to = self.compile(
            path, label, "to", raw.get("to", DestinationConfig.model_fields["to"].default)
        )
        body = self.compile(path, label, "body", raw.get("body"))
        send_at = self.compile(path, label, "send_at", raw.get("send_at"))
        template = raw.get("template")
        if isinstance(template, str):
            body = self.load_file(path, label, template)
        if config is not None and config.content_sid and not (config.body or config.template):
            body = self.renderer.compile("")  # a Content template carries its own text
        media = self.compile_all(path, label, "media_url", config.media_url if config else [])
        variables = (config.content_variables or {}) if config else {}
        values = self.compile_all(path, label, "content_variables", list(variables.values()))
        if config is None or to is None or body is None or media is None or values is None:
            return None
        if config.send_at and send_at is None:
            return None
        destination = Destination(
            config,
            to,
            body,
            send_at,
            media_templates=tuple(media),
            content_variable_templates=tuple(zip(variables, values, strict=True)),
        )
        return self.with_defaults(destination, path, label)

    def compile_all(
        self, path: _Path, label: str, field: str, sources: list[str]
    ) -> list[jinja2.Template] | None:
        """Compile a list of templates (`media_url`, …); None when any does not compile."""
        compiled = [self.compile(path, label, f"{field}.{i}", s) for i, s in enumerate(sources)]
        return None if None in compiled else [t for t in compiled if t is not None]

    def with_defaults(self, destination: Destination, path: _Path, label: str) -> Destination:
        """`destination` with the service's defaults applied and its quiet hours' zone
        template compiled (None, and a problem, when it does not compile)."""
        config, defaults = destination.config, self.defaults
        quiet = defaults.quiet_hours if config.quiet_hours is None else config.quiet_hours
        quiet_hours = quiet or None
        zone_template = None
        if quiet_hours is not None and quiet_hours.timezone is not None:
            field = "quiet_hours.timezone"
            zone_template = self.compile(path, label, field, quiet_hours.timezone)
        if self.caps and config.category is not None and config.category not in self.caps:
            self.add(
                (*path, "category"),
                label,
                "category",
                f"{config.category!r} is not in caps (give it its caps there, or 'exempt'); "
                f"caps has {', '.join(sorted(self.caps))}",
            )
        return dataclasses.replace(
            destination,
            countries=config.countries if config.countries is not None else defaults.countries,
            countries_from="its countries" if config.countries else "SMS_ALLOWED_COUNTRIES",
            validity=config.validity if config.validity is not None else defaults.validity,
            quiet_hours=quiet_hours,
            quiet_timezone=zone_template,
            default_zone=zone_named(defaults.timezone) or UTC_ZONE,
            velocity=velocity_limits(
                config.velocity, defaults.velocity_per_block, defaults.velocity_per_country
            ),
            caps=caps_for(config.category, self.caps),
            budget_zone=zone_named(defaults.budget_timezone) or UTC_ZONE,
        )

    def compile(self, path: _Path, label: str, field: str, source: Any) -> jinja2.Template | None:
        """Compile an inline template; None (and a problem) when it does not compile.

        Anything the compiler raises is reported for this field: a template must never
        turn a config check into a traceback.
        """
        if not isinstance(source, str):
            return None  # absent, or not text: the schema check reports it
        try:
            return self.renderer.compile(source)
        except TemplateConfigError as exc:
            message = str(exc)
        except RecursionError:
            message = "nested too deeply to compile"
        except MemoryError:
            message = "does not compile: out of memory (a huge constant?)"
        except Exception as exc:
            message = f"does not compile: {exc}"
        self.add((*path, field), label, field, message)
        return None

    def load_file(self, path: _Path, label: str, name: str) -> jinja2.Template | None:
        """Compile the template file `name`, found under SMS_TEMPLATES_DIR."""
        directory = self.renderer.templates_dir
        if not directory.is_dir():
            self.add(
                (*path, "template"),
                label,
                "template",
                f"templates directory {directory.resolve()} does not exist (SMS_TEMPLATES_DIR)",
            )
            return None
        relative = not Path(name).is_absolute() and ".." not in Path(name).parts
        candidate = directory / name
        if name and relative and not candidate.is_file():
            problem = "is not a file" if candidate.exists() else "not found"
            self.add(
                (*path, "template"),
                label,
                "template",
                f"file {name!r} {problem} in {directory.resolve()} (SMS_TEMPLATES_DIR)",
            )
            return None
        try:
            return self.renderer.load(name)
        except TemplateConfigError as exc:
            message = str(exc)
        except RecursionError:
            message = f"template file {name!r} is nested too deeply to compile"
        except MemoryError:
            message = f"template file {name!r} does not compile: out of memory"
        except Exception as exc:
            message = f"template file {name!r} does not compile: {exc}"
        self.add((*path, "template"), label, "template", message)
        return None


def _kind(value: Any) -> str:
    """What a YAML value is, in YAML's words."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a date or time" if hasattr(value, "isoformat") else "another kind of value"


def _unknown_field(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(known)}"
    return f"unknown field ({hint})"


def _message(error: ErrorDetails) -> str:
    """Pydantic's message for one error, in the file's terms: no Python class names."""
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        return _unknown_field(str(loc[-1]), _field_names_at(loc[:-1]))
    if kind == "missing":
        return "required, missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping (key: value), got {_kind(error['input'])}"
    if kind == "list_type":
        return f"must be a list, got {_kind(error['input'])}"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(error["input"]), expected, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"must be one of {', '.join(expected)}, got {error['input']!r}{hint}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        return "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
    return error["msg"].removeprefix("Value error, ")


def _field_names_at(loc: tuple[int | str, ...]) -> list[str]:
    """The fields (as written in YAML) of the model at `loc` inside a destination."""
    model: type[BaseModel] = DestinationConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            break
        model = inner
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
