"""The render stage's fast paths agree with the slow, obvious way: templates that are only
text and plain lookups (each perhaps with `| default('text')`) render without Jinja
(oracle: Jinja's own sandboxed render), and bodies are measured with set operations
(oracle: a per-character count)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.pipeline.render import (
    RenderError,
    SmsTemplate,
    TemplateRenderer,
    measure_body,
    render_template,
)

# Keys include dict method names and private names, which must never take the fast path.
KEYS = ["phone", "name", "items", "get", "keys", "_hidden", "__class__", "a b", "n"]
LEAVES = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), max_leaves=8
)
CONTEXTS = st.dictionaries(st.sampled_from(["event", "person", "x"]), VALUES, max_size=3)


def _path_source(root: str, keys: list[str]) -> str:
    expression = root
    for key in keys:
        expression += f".{key}" if key.isidentifier() else f"[{key!r}]"
    return "{{ " + expression + " }}"


def _with_default(source: str, default: str | None) -> str:
    if default is None:
        return source
    return source.removesuffix(" }}") + f" | {default} }}}}"


PATHS = st.builds(
    _with_default,
    st.builds(
        _path_source,
        st.sampled_from(["event", "person", "x", "range"]),
        st.lists(st.sampled_from(KEYS), max_size=3),
    ),
    # Only the first two take the fast path; the others are Jinja's, and must agree too.
    st.sampled_from(
        [None, "default('there')", 'd("")', "default('x', true)", "default(7)", "d(x)"]
    ),
)
SOURCES = st.lists(st.one_of(st.text(alphabet=" Hi,!\n", max_size=4), PATHS), max_size=4).map(
    "".join
)


def jinja_render(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Jinja's own sandboxed render, as `render_template` reports it."""
    saved, template.lookups = template.lookups, None  # type: ignore[attr-defined]
    try:
        return render_template(template, context)
    finally:
        template.lookups = saved  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> TemplateRenderer:
    return TemplateRenderer(tmp_path_factory.mktemp("templates"))


def test_plain_templates_take_the_fast_path(renderer: TemplateRenderer) -> None:
    template = renderer.compile("Hi {{ person.properties.name }}, event {{ event['uuid'] }}")
    assert isinstance(template, SmsTemplate) and template.lookups is not None
    context = {"person": {"properties": {"name": "Ada"}}, "event": {"uuid": 7}}
    assert render_template(template, context) == "Hi Ada, event 7"


def test_a_default_takes_the_fast_path(renderer: TemplateRenderer) -> None:
    template = renderer.compile("Hi {{ person.properties.first_name | default('there') }}!")
    assert template.lookups is not None  # type: ignore[attr-defined]
    for properties, expected in [
        ({"first_name": "Ada"}, "Hi Ada!"),
        ({"first_name": None}, "Hi there!"),  # null, as a missing value
        ({}, "Hi there!"),
        ({"first_name": 7}, "Hi 7!"),
    ]:
        assert render_template(template, {"person": {"properties": properties}}) == expected
    with pytest.raises(RenderError, match="person is undefined"):
        render_template(template, {})  # a missing owner fails, default or not (Jinja's)


@pytest.mark.parametrize(
    "source",
    [
        "{{ name | upper }}",
        "{% if x %}y{% endif %}",
        "{{ x.items }}",
        "{{ x._y }}",
        "{{ x[0] }}",
        "{{ x | default('y', true) }}",
        "{{ x | default(y) }}",
        "{{ x | default(1) }}",
        "{{ x | default('y') | upper }}",
    ],
)
def test_anything_more_is_left_to_jinja(renderer: TemplateRenderer, source: str) -> None:
    assert renderer.compile(source).lookups is None  # type: ignore[attr-defined]


def test_file_templates_get_the_fast_path_too(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("Hello {{ person.name }}\n")
    template = TemplateRenderer(tmp_path).load("hello.txt")
    assert template.lookups is not None  # type: ignore[attr-defined]
    assert render_template(template, {"person": {"name": "Ada"}}) == "Hello Ada"


@settings(max_examples=400, deadline=None)
@given(source=SOURCES, context=CONTEXTS)
def test_same_output_and_errors_as_jinja(
    renderer: TemplateRenderer, source: str, context: dict[str, Any]
) -> None:
    template = renderer.compile(source)
    try:
        expected: str | None = jinja_render(template, context)
        expected_error = None
    except RenderError as exc:
        expected, expected_error = None, str(exc)
    try:
        assert render_template(template, context) == expected
    except RenderError as exc:
        assert str(exc) == expected_error


def _reference_stats(body: str) -> tuple[int, str, int]:
    """The straightforward per-character count `measure_body` must agree with."""
    from app.pipeline.render import _GSM7_BASIC, _GSM7_EXTENSION

    def segments(costs: list[int], single: int, multi: int) -> int:
        if sum(costs) <= single:
            return 1
        count, used = 1, 0
        for cost in costs:
            if used + cost > multi:
                count, used = count + 1, 0
            used += cost
        return count

    units = [2 if ord(c) > 0xFFFF else 1 for c in body]
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in body):
        costs = [2 if c in _GSM7_EXTENSION else 1 for c in body]
        return sum(units), "GSM-7", segments(costs, 160, 153)
    return sum(units), "UCS-2", segments(units, 70, 67)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab €[é✓\U0001f600"), max_size=400)
    | st.integers(0, 400).map(lambda n: "x" * n)
    | st.integers(0, 200).map(lambda n: "✓" * n)
)
def test_measure_body_agrees_with_the_per_character_count(body: str) -> None:
    stats = measure_body(body)
    assert (stats.length, stats.encoding, stats.segments) == _reference_stats(body)


def test_the_same_source_compiles_once(renderer: TemplateRenderer) -> None:
    shared = renderer.compile("{{ person.properties.phone }}")
    assert renderer.compile("{{ person.properties.phone }}") is shared
    assert renderer.compile("{{ person.properties.mobile }}") is not shared
