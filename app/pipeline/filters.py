"""Stage 2: does an event pass a destination's property filters?

The semantics follow PostHog's own property matching (posthog-python ``match_property``
and HogQL) so a filter copied from PostHog behaves the same here, with two deliberate
improvements: ordering operators compare numeric strings as numbers (``"10" > "9"``), and
a missing property satisfies the negative operators (HogQL's ``ifNull(..., 1)``).

Pure: no I/O, and all parsing (regexes, needles, numbers) happens once at validation.

Regexes run on RE2, as in PostHog (HogQL's `match` is ClickHouse's RE2): linear in the
length of the text, so no event can set off catastrophic backtracking. Patterns RE2 does
not support (backreferences, lookaround) are refused when the destinations file loads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from app.pipeline.events import Event

Operator = Literal[
    "exact",
    "is_not",
    "icontains",
    "not_icontains",
    "regex",
    "not_regex",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_set",
    "is_not_set",
]

_PRESENCE: frozenset[str] = frozenset({"is_set", "is_not_set"})
_ORDERING: frozenset[str] = frozenset({"gt", "gte", "lt", "lte"})
# A missing property satisfies these: "plan is not 'pro'" holds for a user with no plan.
_NEGATIVE: dict[str, str] = {"is_not": "exact", "not_icontains": "icontains", "not_regex": "regex"}


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _text(value: object) -> str:
    """Render a property or filter value the way PostHog stores it (JSON-ish text).

    Booleans are ``true``/``false`` and integral floats drop their ``.0`` so that ``True``
    matches ``"true"`` and ``5.0`` matches ``5``; containers become JSON, not Python repr.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _fold(value: object) -> str:
    """Case-insensitive form of `_text` (casefold, like posthog-python's ``str_iequals``)."""
    return _text(value).casefold()


def exact_key(value: object) -> str | None:
    """The folded form `exact` compares a property value by, for indexing filters.

    Only scalars get a key: for a missing (None) or container value an index should not
    prune, so callers fall back to evaluating every filter. For a scalar, ``exact_key(v) in
    f.exact_values()`` is by construction the same test `PropertyFilter.matches` does.
    """
    if type(value) is str:
        return value.casefold()  # the hot case; what `_fold` does to a plain str
    return _fold(value) if _is_scalar(value) else None


def _number(value: object) -> Decimal | None:
    """`value` as a finite number, or None: ints, floats and numeric strings; never bools.

    Decimal keeps big integers exact; floats go through ``repr`` so ``0.1`` equals ``"0.1"``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        # Decimal accepts "1_000" and surrounding spaces; a property value with "_" is text.
        if "_" in value:
            return None
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


def _compile_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2 (linear-time matching), or ValueError saying why not."""
    # Imported with the first regex filter: RE2 costs a process ~2.5 MB it may not need.
    import re2

    options = re2.Options()
    options.log_errors = False  # the error is ours to report, not RE2's to print
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"invalid regex {pattern!r}: {reason} (regexes run on RE2, in linear time: "
            "no backreferences or lookaround)"
        ) from None


def _compare(left: Any, right: Any, operator: str) -> bool:
    if operator == "gt":
        return bool(left > right)
    if operator == "gte":
        return bool(left >= right)
    if operator == "lt":
        return bool(left < right)
    return bool(left <= right)


class PropertyFilter(BaseModel):
    """One condition on an event, person or group property, as in a PostHog filter.

    `key` is taken literally: PostHog keys such as ``$current_url`` or ``utm.source`` are
    never split into paths.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    type: Literal["event", "person", "group"] = "event"
    group: str | None = Field(default=None, min_length=1)
    operator: Operator = "exact"
    value: Any = None

    # Derived once at validation so matching an event never re-parses the filter.
    _pattern: Any = PrivateAttr(default=None)  # an RE2 pattern
    _needles: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _threshold: Decimal | None = PrivateAttr(default=None)

    @field_validator("value", mode="before")
    @classmethod
    def _dates_to_iso(cls, value: Any) -> Any:
        # YAML turns `value: 2024-01-01` into a date; compare it as the ISO text events carry.
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    @model_validator(mode="after")
    def _check_and_prepare(self) -> PropertyFilter:
        if self.type == "group" and self.group is None:
            raise ValueError(
                "'group' (the group type, e.g. 'company') is required when type is 'group'"
            )
        if self.type != "group" and self.group is not None:
            raise ValueError(f"'group' is only allowed when type is 'group', not {self.type!r}")

        operator, value = self.operator, self.value
        if operator in _PRESENCE:
            # PostHog sends e.g. value "is_set" with these operators; it means nothing.
            return self
        if value is None:
            raise ValueError(f"operator {operator!r} needs a 'value'")

        if isinstance(value, list):
            if operator not in ("exact", "is_not"):
                raise ValueError(
                    f"a list 'value' is only allowed with exact/is_not, not {operator!r}"
                )
            if not value:
                raise ValueError(f"operator {operator!r} needs a non-empty list of values")
            if not all(_is_scalar(item) for item in value):
                raise ValueError("every item of a list 'value' must be a string, number or boolean")
        elif not _is_scalar(value):
            raise ValueError(
                f"'value' must be a string, number or boolean, got {type(value).__name__}"
            )

        if operator in ("exact", "is_not"):
            self._needles = frozenset(
                _fold(item) for item in (value if isinstance(value, list) else [value])
            )
        elif operator in ("icontains", "not_icontains"):
            self._needles = frozenset({_fold(value)})
        elif operator in ("regex", "not_regex"):
            if not isinstance(value, str):
                raise ValueError(f"operator {operator!r} needs a string pattern, got {value!r}")
            self._pattern = _compile_regex(value)
        elif operator in _ORDERING:
            if isinstance(value, bool):
                raise ValueError(f"operator {operator!r} needs a number or string, not a boolean")
            self._threshold = _number(value)
        return self

    def _source(self, event: Event) -> dict[str, Any] | None:
        if self.type == "person":
            return event.person.properties
        if self.type == "group":
            assert self.group is not None  # guaranteed by the validator
            return event.group_properties(self.group)
        return event.properties

    def property_of(self, event: Event) -> Any:
        """The property this filter reads from `event`, or None when it is missing."""
        source = self._source(event)
        return None if source is None else source.get(self.key)

    def property_address(self) -> tuple[str, str | None, str]:
        """Which property this filter reads: (type, group type or None, key).

        Filters with the same address read the same value from any event.
        """
        return (self.type, self.group, self.key)

    def exact_values(self) -> frozenset[str] | None:
        """For an `exact` filter, the folded values it accepts (see `exact_key`), else None.

        An event whose property has an `exact_key` outside this set surely fails the filter,
        which lets `DestinationSet` skip such destinations without evaluating them.
        """
        return self._needles if self.operator == "exact" else None

    def matches(self, event: Event) -> bool:
        """Whether `event` satisfies this filter (a missing or null property is "not set")."""
        prop = self.property_of(event)
        if self.operator == "is_set":
            return prop is not None
        if self.operator == "is_not_set":
            return prop is None
        positive = _NEGATIVE.get(self.operator)
        if positive is not None:
            return prop is None or not self._matches_present(positive, prop)
        return prop is not None and self._matches_present(self.operator, prop)

    def _matches_present(self, operator: str, prop: Any) -> bool:
        """The positive `operator` against a property value known to be present."""
        if operator == "exact":
            return _fold(prop) in self._needles
        if operator == "icontains":
            text = _fold(prop)
            return any(needle in text for needle in self._needles)
        if operator == "regex":
            assert self._pattern is not None  # compiled by the validator
            return self._pattern.search(_text(prop)) is not None
        # Ordering: numerically when both sides are numbers, else as strings (ISO dates).
        prop_number = _number(prop)
        if prop_number is not None and self._threshold is not None:
            return _compare(prop_number, self._threshold, operator)
        return _compare(_text(prop), _text(self.value), operator)

    def describe(self) -> str:
        """Human-readable form for traces, e.g. ``group company.plan exact 'pro'``."""
        where = f"group {self.group}" if self.type == "group" else self.type
        text = f"{where}.{self.key} {self.operator}"
        if self.operator in _PRESENCE:
            return text
        return f"{text} {self.value!r}"


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Outcome of `match_filters`: whether all held and, if not, the first that failed."""

    matched: bool
    failed: PropertyFilter | None = None


def match_filters(filters: Sequence[PropertyFilter], event: Event) -> FilterResult:
    """Check that every filter holds for `event` (AND); stop at the first that fails."""
    for property_filter in filters:
        if not property_filter.matches(event):
            return FilterResult(matched=False, failed=property_filter)
    return FilterResult(matched=True)
