from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from app.pipeline.events import Event, Person
from app.pipeline.filters import FilterResult, PropertyFilter, match_filters


def make_event(
    properties: dict[str, Any] | None = None,
    person: dict[str, Any] | None = None,
    groups: dict[str, Any] | None = None,
) -> Event:
    return Event(
        name="signed_up",
        uuid="u-1",
        distinct_id="d-1",
        properties=properties or {},
        timestamp="2024-05-01T12:00:00Z",
        person=Person(id="p-1", properties=person or {}),
        groups=groups or {},
    )


def event_filter(operator: str, value: Any = None, key: str = "prop") -> PropertyFilter:
    return PropertyFilter.model_validate({"key": key, "operator": operator, "value": value})


def holds(operator: str, value: Any, prop: Any) -> bool:
    return event_filter(operator, value).matches(make_event({"prop": prop}))


# --- every operator, positive and negative ----------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "prop", "expected"),
    [
        ("exact", "pro", "pro", True),
        ("exact", "pro", "free", False),
        ("is_not", "pro", "free", True),
        ("is_not", "pro", "pro", False),
        ("icontains", "adm", "Sysadmin", True),
        ("icontains", "adm", "user", False),
        ("not_icontains", "adm", "user", True),
        ("not_icontains", "adm", "Sysadmin", False),
        ("regex", r"^\d{3}-", "555-1234", True),
        ("regex", r"^\d{3}-", "x555-1234", False),
        ("not_regex", r"^\d{3}-", "x555-1234", True),
        ("not_regex", r"^\d{3}-", "555-1234", False),
        ("gt", 10, 11, True),
        ("gt", 10, 10, False),
        ("gte", 10, 10, True),
        ("gte", 10, 9, False),
        ("lt", 10, 9, True),
        ("lt", 10, 10, False),
        ("lte", 10, 10, True),
        ("lte", 10, 11, False),
        ("is_set", None, "anything", True),
        ("is_set", None, "", True),
        ("is_set", None, False, True),
        ("is_set", None, 0, True),
        ("is_not_set", None, "anything", False),
    ],
)
def test_operators(operator: str, value: Any, prop: Any, expected: bool) -> None:
    assert holds(operator, value, prop) is expected


# --- a missing property: positive operators fail, negative ones hold ---------------------

MISSING_CASES: list[tuple[str, Any, bool]] = [
    ("exact", "pro", False),
    ("exact", ["pro", "team"], False),
    ("icontains", "p", False),
    ("regex", ".*", False),
    ("gt", 0, False),
    ("gte", 0, False),
    ("lt", 0, False),
    ("lte", 0, False),
    ("is_set", None, False),
    ("is_not", "pro", True),
    ("is_not", ["pro", "team"], True),
    ("not_icontains", "p", True),
    ("not_regex", ".*", True),
    ("is_not_set", None, True),
]


@pytest.mark.parametrize(("operator", "value", "expected"), MISSING_CASES)
def test_absent_property(operator: str, value: Any, expected: bool) -> None:
    assert event_filter(operator, value).matches(make_event({"other": "x"})) is expected


@pytest.mark.parametrize(("operator", "value", "expected"), MISSING_CASES)
def test_null_property_counts_as_missing(operator: str, value: Any, expected: bool) -> None:
    assert event_filter(operator, value).matches(make_event({"prop": None})) is expected


# --- exact / is_not details --------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "prop", "expected"),
    [
        ("exact", "team", True),
        ("exact", "TEAM", True),
        ("exact", "free", False),
        ("is_not", "team", False),
        ("is_not", "Pro", False),
        ("is_not", "free", True),
    ],
)
def test_list_values(operator: str, prop: str, expected: bool) -> None:
    assert holds(operator, ["pro", "team"], prop) is expected


@pytest.mark.parametrize(
    ("value", "prop"),
    [("pro", "PRO"), ("PrO", "pro"), ("Straße", "STRASSE"), ("ÉTÉ", "été")],
)
def test_exact_is_case_insensitive(value: str, prop: str) -> None:
    assert holds("exact", value, prop)
    assert not holds("is_not", value, prop)


@pytest.mark.parametrize(
    ("value", "prop", "expected"),
    [
        (5, "5", True),
        ("5", 5, True),
        (5, 5.0, True),
        (5.0, 5, True),
        (2.5, "2.5", True),
        (5, "5.0", False),  # text comparison, as in PostHog
        (5, 6, False),
        ([1, 2], 2.0, True),
    ],
)
def test_exact_numbers(value: Any, prop: Any, expected: bool) -> None:
    assert holds("exact", value, prop) is expected


@pytest.mark.parametrize(
    ("value", "prop", "expected"),
    [
        (True, True, True),
        ("true", True, True),
        ("TRUE", True, True),
        (True, "true", True),
        (False, False, True),
        ("false", False, True),
        (True, False, False),
        ("true", "false", False),
        (True, 1, False),  # a bool is not the number 1
        (["true"], True, True),
    ],
)
def test_exact_booleans(value: Any, prop: Any, expected: bool) -> None:
    assert holds("exact", value, prop) is expected


# --- icontains / regex details -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prop", "expected"),
    [
        ("ADMIN", "sysadmin", True),
        ("admin", "SysAdmin", True),
        ("42", 1420, True),
        ("tru", True, True),
        ("beta", ["alpha", "beta"], True),
        ("xyz", "abc", False),
    ],
)
def test_icontains(value: Any, prop: Any, expected: bool) -> None:
    assert holds("icontains", value, prop) is expected
    assert holds("not_icontains", value, prop) is not expected


@pytest.mark.parametrize(
    ("pattern", "prop", "expected"),
    [
        ("pro", "Pro", False),  # case-sensitive, as in PostHog
        ("(?i)pro", "Pro", True),
        ("ple", "example.com", True),  # search, not fullmatch
        (r"^\d+$", 12345, True),
        (r"^\d+$", 5.0, True),  # an integral float renders like an int
        ("^true$", True, True),
        (r"^https://[^/]*\.example\.com/", "https://app.example.com/x", True),
        (r"^https://[^/]*\.example\.com/", "https://example.org/", False),
    ],
)
def test_regex(pattern: str, prop: Any, expected: bool) -> None:
    assert holds("regex", pattern, prop) is expected
    assert holds("not_regex", pattern, prop) is not expected


def test_regex_is_compiled_once_at_validation() -> None:
    f = event_filter("regex", "^a+$")
    pattern = f._pattern
    assert pattern is not None
    assert f.matches(make_event({"prop": "aaa"}))
    assert f.matches(make_event({"prop": "a"}))
    assert f._pattern is pattern


# --- ordering: numbers numerically, everything else as strings ---------------------------


@pytest.mark.parametrize(
    ("operator", "value", "prop", "expected"),
    [
        ("gt", "9", "10", True),  # numeric strings compare as numbers, unlike posthog-python
        ("gt", 9, "10", True),
        ("gt", "9", 10, True),
        ("lt", "10", "9", True),
        ("lt", 10, 2.5, True),
        ("lt", "10", "2.5", True),
        ("gt", 2.5, 10, True),
        ("gte", 0.1, "0.1", True),
        ("lte", "0.1", 0.1, True),
        ("gt", -1, "-0.5", True),
        ("gt", "1e3", 1001, True),
        ("gt", 9007199254740992, 9007199254740993, True),  # big ints stay exact
        ("gt", 5, " 6 ", True),
        # dates (ISO-8601) compare correctly as strings
        ("gt", "2024-01-09", "2024-01-10", True),
        ("lt", "2024-01-09", "2024-01-10", False),
        ("gte", "2024-05-01T00:00:00Z", "2024-05-01T12:00:00Z", True),
        ("lt", "2024-05-01T00:00:00Z", "2024-04-30T23:59:59Z", True),
        # mixed number / text: string comparison
        ("gt", 10, "abc", True),
        ("lt", "b", "a", True),
        ("gt", "b", "a", False),
        # a bool property is not a number: "true" > "1" as text
        ("gt", 1, True, True),
        # "1_000" is text, not a thousand
        ("gt", 5, "1_000", False),
        ("gt", 5, "nan", True),  # text "nan" > "5"
        ("gt", 5, float("inf"), True),  # text "inf" > "5"
    ],
)
def test_ordering(operator: str, value: Any, prop: Any, expected: bool) -> None:
    assert holds(operator, value, prop) is expected


def test_yaml_dates_compare_as_iso_text() -> None:
    f = event_filter("gte", dt.date(2024, 5, 1))
    assert f.value == "2024-05-01"
    assert f.matches(make_event({"prop": "2024-05-02"}))
    assert not f.matches(make_event({"prop": "2024-04-30"}))


# --- where the property comes from -------------------------------------------------------


def test_event_filter_reads_event_properties_only() -> None:
    f = PropertyFilter(key="plan", value="pro")
    assert f.matches(make_event({"plan": "pro"}, person={"plan": "free"}))
    assert not f.matches(make_event({"plan": "free"}, person={"plan": "pro"}))


def test_person_filter() -> None:
    f = PropertyFilter(key="plan", type="person", value="pro")
    assert f.matches(make_event({"plan": "free"}, person={"plan": "Pro"}))
    assert not f.matches(make_event({"plan": "pro"}, person={"plan": "free"}))
    assert not f.matches(make_event({"plan": "pro"}))


def test_keys_are_literal_never_paths() -> None:
    f = PropertyFilter(key="utm.source", value="google")
    assert f.matches(make_event({"utm.source": "google"}))
    assert not f.matches(make_event({"utm": {"source": "google"}}))
    dollar = PropertyFilter(key="$current_url", operator="icontains", value="/pricing")
    assert dollar.matches(make_event({"$current_url": "https://x.io/pricing"}))


COMPANY = {"company": {"key": "acme", "properties": {"plan": "pro", "seats": 12}}}


@pytest.mark.parametrize(
    ("groups", "operator", "value", "expected"),
    [
        (COMPANY, "exact", "pro", True),
        (COMPANY, "exact", "free", False),
        (COMPANY, "gt", "9", True),
        (COMPANY, "is_set", None, True),
        ({}, "exact", "pro", False),
        ({}, "is_set", None, False),
        ({}, "is_not", "pro", True),
        ({}, "is_not_set", None, True),
        ({"company": "acme"}, "exact", "pro", False),  # a group without properties
        ({"company": {"key": "acme"}}, "is_not_set", None, True),
        ({"project": {"properties": {"plan": "pro"}}}, "exact", "pro", False),
    ],
)
def test_group_filter(groups: dict[str, Any], operator: str, value: Any, expected: bool) -> None:
    key = "seats" if operator == "gt" else "plan"
    f = PropertyFilter.model_validate(
        {"key": key, "type": "group", "group": "company", "operator": operator, "value": value}
    )
    assert f.matches(make_event({"plan": "pro", "seats": 100}, groups=groups)) is expected


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"key": "a", "operator": "regex", "value": "("}, "invalid regex"),
        ({"key": "a", "operator": "not_regex", "value": "[a-"}, "invalid regex"),
        ({"key": "a", "operator": "regex", "value": 5}, "string pattern"),
        ({"key": "a"}, "needs a 'value'"),
        ({"key": "a", "operator": "gt"}, "needs a 'value'"),
        ({"key": "a", "operator": "icontains", "value": None}, "needs a 'value'"),
        ({"key": "a", "operator": "gt", "value": [1, 2]}, "only allowed with exact/is_not"),
        ({"key": "a", "operator": "icontains", "value": ["x"]}, "only allowed with exact/is_not"),
        ({"key": "a", "operator": "gt", "value": True}, "not a boolean"),
        ({"key": "a", "value": []}, "non-empty list"),
        ({"key": "a", "value": [{"x": 1}]}, "every item"),
        ({"key": "a", "value": {"x": 1}}, "string, number or boolean"),
        ({"key": "a", "type": "group", "value": "x"}, "'group'"),
        ({"key": "a", "type": "person", "group": "company", "value": "x"}, "only allowed"),
        ({"key": "a", "group": "company", "value": "x"}, "only allowed"),
        ({"key": "a", "operator": "contains", "value": "x"}, "operator"),
        ({"key": "a", "value": "x", "extra": 1}, "extra"),
        ({"key": "a", "type": "cohort", "value": "x"}, "type"),
        ({"key": "", "value": "x"}, "key"),
        ({"value": "x"}, "key"),
    ],
)
def test_validation_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PropertyFilter.model_validate(raw)
    assert message in str(caught.value)


@pytest.mark.parametrize("value", [None, "is_set", ["ignored"]])
def test_presence_operators_ignore_value(value: Any) -> None:
    # PostHog itself sends {"operator": "is_set", "value": "is_set"}.
    f = PropertyFilter.model_validate({"key": "a", "operator": "is_set", "value": value})
    assert f.matches(make_event({"a": 1}))


def test_filters_are_frozen() -> None:
    f = PropertyFilter(key="a", value="x")
    with pytest.raises(ValidationError):
        f.key = "b"  # type: ignore[misc]


# --- describe ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"key": "plan", "type": "person", "value": "pro"}, "person.plan exact 'pro'"),
        (
            {"key": "plan", "type": "group", "group": "company", "value": "pro"},
            "group company.plan exact 'pro'",
        ),
        (
            {"key": "$browser", "operator": "is_not", "value": ["a", "b"]},
            "event.$browser is_not ['a', 'b']",
        ),
        ({"key": "n", "operator": "gt", "value": 5}, "event.n gt 5"),
        ({"key": "email", "type": "person", "operator": "is_set"}, "person.email is_set"),
    ],
)
def test_describe(raw: dict[str, Any], expected: str) -> None:
    assert PropertyFilter.model_validate(raw).describe() == expected


# --- match_filters -----------------------------------------------------------------------


def test_match_filters_empty_list_matches() -> None:
    assert match_filters([], make_event()) == FilterResult(matched=True, failed=None)


def test_match_filters_all_hold() -> None:
    filters = [
        PropertyFilter(key="plan", value="pro"),
        PropertyFilter(key="email", type="person", operator="is_set"),
    ]
    result = match_filters(filters, make_event({"plan": "pro"}, person={"email": "a@b.c"}))
    assert result == FilterResult(matched=True)


def test_match_filters_returns_first_failing() -> None:
    passes = PropertyFilter(key="plan", value="pro")
    first_failure = PropertyFilter(key="seats", operator="gt", value=10)
    second_failure = PropertyFilter(key="email", type="person", operator="is_set")
    result = match_filters(
        [passes, first_failure, second_failure], make_event({"plan": "pro", "seats": 3})
    )
    assert not result.matched
    assert result.failed is first_failure


# --- regexes are linear-time (RE2) ---------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"^(a+)+$", r"^(a|a)*$", r"^(a|aa)+$", r"(x+x+)+y"])
def test_catastrophic_patterns_match_in_linear_time(pattern: str) -> None:
    import time

    hostile = "a" * 100_000 + "!" if "a" in pattern else "x" * 100_000
    started = time.monotonic()
    assert holds("regex", pattern, hostile) is False
    assert holds("not_regex", pattern, hostile) is True
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!a)b", r"a{2000}"])
def test_patterns_re2_cannot_run_are_refused_when_loading(pattern: str) -> None:
    with pytest.raises(ValidationError, match="regexes run on RE2") as caught:
        event_filter("regex", pattern)
    assert ": b'" not in str(caught.value)  # RE2's message, decoded
