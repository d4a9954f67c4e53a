"""`DestinationSet.candidates`: the exact-filter index only prunes destinations that fail.

The reference everywhere is the unindexed behaviour: every enabled destination whose
`events` admit the event, fully evaluated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.destinations import (
    Destination,
    DestinationConfig,
    DestinationSet,
    load_destinations,
)
from app.pipeline.events import Event, Person
from app.pipeline.filters import PropertyFilter, exact_key
from app.pipeline.plan import evaluate
from app.pipeline.render import TemplateRenderer
from bench.destinations import BENCH_EVENT
from bench.destinations import write_destinations as write_bench_destinations
from tests.conftest import REPO

RENDERER = TemplateRenderer(REPO / "templates")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def destination(spec: dict[str, Any]) -> Destination:
    """A compiled destination from a config dict (id, events, filters, enabled, …)."""
    config = DestinationConfig.model_validate(
        {"body": "hi {{ event.uuid }}", "from": "+15005550006", **spec}
    )
    return Destination(config, RENDERER.compile(config.to), RENDERER.compile(str(config.body)))


def destination_set(*specs: dict[str, Any]) -> DestinationSet:
    return DestinationSet(destination(spec) for spec in specs)


def exact(value: Any, key: str = "plan", type_: str = "event", **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": type_, "operator": "exact", "value": value, **extra}


def make_event(
    name: str = "x",
    properties: dict[str, Any] | None = None,
    person: dict[str, Any] | None = None,
    groups: dict[str, Any] | None = None,
) -> Event:
    return Event(
        name=name,
        uuid="u-1",
        distinct_id="d-1",
        properties=properties or {},
        timestamp="2026-01-01T00:00:00Z",
        person=Person(id="p-1", properties={"phone": "+14155550100", **(person or {})}),
        groups=groups or {},
    )


def ids(destinations: list[Destination]) -> list[str]:
    return [d.id for d in destinations]


def matched_ids(destinations: list[Destination], event: Event) -> list[str]:
    """Ids of `destinations` that full evaluation matches, in the order given."""
    context = event.template_context()
    return [
        d.id
        for d in destinations
        if evaluate(d, event, context, "US", NOW, timedelta(days=1)).matched
    ]


# --- pruning -----------------------------------------------------------------------------


def test_non_matching_exact_values_are_pruned() -> None:
    destinations = destination_set(
        {"id": "free", "events": ["x"], "filters": [exact("free")]},
        {"id": "pro", "events": ["x"], "filters": [exact("pro")]},
        {"id": "team", "events": ["x"], "filters": [exact("team")]},
        {"id": "elsewhere", "events": ["y"], "filters": [exact("pro")]},
    )
    assert ids(destinations.candidates(make_event("x", {"plan": "pro"}))) == ["pro"]
    assert destinations.candidates(make_event("x", {"plan": "enterprise"})) == []
    assert ids(destinations.candidates(make_event("y", {"plan": "pro"}))) == ["elsewhere"]


def test_bench_file_leaves_one_candidate(tmp_path: Path) -> None:
    # The benchmark's 1,000 destinations: 99 on `bench` behind an exact filter that fails.
    _, many = write_bench_destinations(tmp_path)
    destinations = load_destinations(many, RENDERER)
    event = make_event(BENCH_EVENT, {"plan": "pro", "n": 1})
    assert ids(destinations.candidates(event)) == ["bench-sms"]
    assert ids(destinations.candidates(make_event(BENCH_EVENT, {"plan": "PLAN-950"}))) == [
        "decoy-950",
        "bench-sms",
    ]


def test_list_values_admit_any_of_them() -> None:
    destinations = destination_set(
        {"id": "paid", "events": ["x"], "filters": [exact(["pro", "team"])]},
        {"id": "free", "events": ["x"], "filters": [exact(["free", "trial"])]},
    )
    assert ids(destinations.candidates(make_event("x", {"plan": "team"}))) == ["paid"]
    assert ids(destinations.candidates(make_event("x", {"plan": "trial"}))) == ["free"]
    assert destinations.candidates(make_event("x", {"plan": "other"})) == []


@pytest.mark.parametrize(
    ("filter_value", "prop"),
    [
        ("Pro", "pRO"),  # exact is case-insensitive
        ("straße", "STRASSE"),  # casefold, not lower: ß folds to ss
        (10, "10"),  # numbers compare as their text
        ("10", 10),
        (10, 10.0),  # an integral float drops its .0
        (True, "TRUE"),  # booleans are true/false
        ("true", True),
        (1.5, "1.5"),
    ],
)
def test_index_agrees_with_filter_when_it_matches(filter_value: Any, prop: Any) -> None:
    destinations = destination_set({"id": "a", "events": ["x"], "filters": [exact(filter_value)]})
    event = make_event("x", {"plan": prop})
    assert PropertyFilter.model_validate(exact(filter_value)).matches(event)
    assert ids(destinations.candidates(event)) == ["a"]


@pytest.mark.parametrize(
    ("filter_value", "prop"),
    [
        (10, "10.0"),  # text, not numbers: "10.0" is not "10"
        (1, True),  # a boolean is "true", not 1
        ("pro", " pro"),
        ("pro", "professional"),
    ],
)
def test_index_agrees_with_filter_when_it_fails(filter_value: Any, prop: Any) -> None:
    destinations = destination_set({"id": "a", "events": ["x"], "filters": [exact(filter_value)]})
    event = make_event("x", {"plan": prop})
    assert not PropertyFilter.model_validate(exact(filter_value)).matches(event)
    assert destinations.candidates(event) == []


@pytest.mark.parametrize(
    "properties",
    [{}, {"plan": None}, {"plan": ["pro"]}, {"plan": {"name": "pro"}}],
    ids=["missing", "null", "list", "object"],
)
def test_no_scalar_value_prunes_nothing(properties: dict[str, Any]) -> None:
    destinations = destination_set(
        {"id": "a", "events": ["x"], "filters": [exact("pro")]},
        {"id": "b", "events": ["x"], "filters": [exact("free")]},
    )
    assert exact_key(properties.get("plan")) is None
    assert ids(destinations.candidates(make_event("x", properties))) == ["a", "b"]


def test_person_and_group_filters_read_their_own_properties() -> None:
    destinations = destination_set(
        {"id": "event-pro", "events": ["x"], "filters": [exact("pro")]},
        {"id": "person-pro", "events": ["x"], "filters": [exact("pro", type_="person")]},
        {"id": "person-free", "events": ["x"], "filters": [exact("free", type_="person")]},
        {
            "id": "company-pro",
            "events": ["x"],
            "filters": [exact("pro", type_="group", group="company")],
        },
    )
    event = make_event(
        "x",
        {"plan": "free"},
        person={"plan": "pro"},
        groups={"company": {"properties": {"plan": "PRO"}}},
    )
    assert ids(destinations.candidates(event)) == ["person-pro", "company-pro"]
    # No such group: that index prunes nothing, the others still do.
    no_group = make_event("x", {"plan": "pro"}, person={"plan": "free"})
    assert ids(destinations.candidates(no_group)) == ["event-pro", "person-free", "company-pro"]


def test_first_exact_filter_indexes_and_every_filter_still_runs() -> None:
    destinations = destination_set(
        {
            "id": "a",
            "events": ["x"],
            "filters": [
                {"key": "n", "operator": "gt", "value": 5},
                exact("pro"),
                exact("eu", key="region"),
            ],
        },
    )
    # Indexed on `plan` (the first exact filter), not `region`: still a candidate ...
    event = make_event("x", {"plan": "pro", "region": "us", "n": 9})
    assert ids(destinations.candidates(event)) == ["a"]
    # ... and evaluation, not the index, rejects it.
    assert matched_ids(destinations.candidates(event), event) == []
    assert destinations.candidates(make_event("x", {"plan": "free", "region": "eu"})) == []


# --- order and destinations without an index -----------------------------------------------


def test_candidates_keep_file_order_across_indexes_and_every_event() -> None:
    destinations = destination_set(
        {"id": "a", "events": ["x"], "filters": [exact("pro", type_="person")]},
        {"id": "b", "filters": [exact("pro")]},  # no events list: every event
        {"id": "c", "events": ["x"], "filters": [{"key": "plan", "operator": "is_set"}]},
        {"id": "d", "events": ["x"], "filters": [exact("pro")]},
        {"id": "e"},  # every event, unfiltered
        {"id": "f", "events": ["x"], "filters": [exact("free")]},
        {"id": "g", "events": ["x"], "enabled": False, "filters": [exact("pro")]},
        {"id": "h", "events": ["x"], "filters": [exact("pro", type_="person")]},
    )
    event = make_event("x", {"plan": "pro"}, person={"plan": "pro"})
    assert ids(destinations.candidates(event)) == ["a", "b", "c", "d", "e", "h"]
    assert ids(destinations.candidates(make_event("x"))) == ["a", "b", "c", "d", "e", "f", "h"]
    # An event name nobody lists reaches the every-event ones, still indexed.
    assert ids(destinations.candidates(make_event("z", {"plan": "pro"}))) == ["b", "e"]
    assert ids(destinations.candidates(make_event("z", {"plan": "free"}))) == ["e"]


# --- the index only prunes: exhaustive comparison with the unindexed evaluation ----------

EVENT_NAMES = ["x", "y", "z"]
KEYS = ["plan", "tier"]
FILTER_VALUES: list[Any] = ["pro", "Pro", "free", "ß", "ss", "10", 10, 10.5, True, "true", 0]
PROPERTY_VALUES: list[Any] = [
    *FILTER_VALUES,
    "PRO",
    "SS",
    "10.0",
    10.0,
    False,
    1,
    None,
    ["pro"],
    {"k": 1},
]

filter_values = st.sampled_from(FILTER_VALUES)
property_filters = st.one_of(
    st.builds(
        lambda key, type_, value: exact(value, key=key, type_=type_),
        st.sampled_from(KEYS),
        st.sampled_from(["event", "person"]),
        filter_values | st.lists(filter_values, min_size=1, max_size=3),
    ),
    st.builds(
        lambda key, value: exact(value, key=key, type_="group", group="company"),
        st.sampled_from(KEYS),
        filter_values,
    ),
    st.builds(
        lambda key, operator, value: {"key": key, "operator": operator, "value": value},
        st.sampled_from(KEYS),
        st.sampled_from(["is_not", "icontains", "not_icontains"]),
        st.sampled_from(["pro", "ss", "10"]),
    ),
    st.builds(
        lambda key, operator: {"key": key, "operator": operator},
        st.sampled_from(KEYS),
        st.sampled_from(["is_set", "is_not_set"]),
    ),
)
destination_specs = st.fixed_dictionaries(
    {
        "events": st.none() | st.lists(st.sampled_from(EVENT_NAMES), min_size=1, max_size=2),
        "filters": st.lists(property_filters, max_size=3),
        "enabled": st.booleans(),
    }
)
property_dicts = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(PROPERTY_VALUES))
events = st.builds(
    lambda name, properties, person, company: make_event(
        name,
        properties,
        person,
        {} if company is None else {"company": {"properties": company}},
    ),
    st.sampled_from([*EVENT_NAMES, "unlisted"]),
    property_dicts,
    property_dicts,
    st.none() | property_dicts,
)


@settings(max_examples=300, deadline=None)
@given(specs=st.lists(destination_specs, max_size=12), event_batch=st.lists(events, max_size=6))
def test_index_only_prunes(specs: list[dict[str, Any]], event_batch: list[Event]) -> None:
    every = [destination({"id": f"d{i}", **spec}) for i, spec in enumerate(specs)]
    destinations = DestinationSet(every)
    enabled = [d for d in every if d.config.enabled]
    for event in event_batch:
        candidates = destinations.candidates(event)
        # Candidates come in file order, each once, and only enabled ones.
        positions = [every.index(d) for d in candidates]
        assert positions == sorted(set(positions))
        assert all(d.config.enabled for d in candidates)
        # What full evaluation matches is the same with and without the index.
        assert matched_ids(candidates, event) == matched_ids(enabled, event)


@given(value=st.one_of(st.text(max_size=6), st.integers(), st.floats(), st.booleans()))
def test_exact_key_is_the_filters_comparison(value: Any) -> None:
    # For any scalar, "exact_key in exact_values" is exactly what the filter decides.
    event = make_event("x", {"plan": value})
    for needle in [value, str(value), "pro"]:
        exact_filter = PropertyFilter.model_validate(exact(needle))
        values = exact_filter.exact_values()
        assert values is not None
        assert (exact_key(value) in values) == exact_filter.matches(event)
