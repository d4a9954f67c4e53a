"""The sandbox's bounds: no template, whatever the event, holds the process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from app.pipeline.render import RenderError, TemplateRenderer, render_template


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> TemplateRenderer:
    return TemplateRenderer(tmp_path_factory.mktemp("templates"))


def render(renderer: TemplateRenderer, source: str, **context: Any) -> str:
    return render_template(renderer.compile(source), context)


HOSTILE = {
    # arithmetic: refused before the value is built
    "{{ 'x' * 10**9 }}": "a value of 1,000,000,000 characters is over the 100,000 allowed",
    "{{ [1, 2] * 10**8 }}": "a value of 200,000,000 characters is over the 100,000 allowed",
    "{{ 10 ** 100000 }}": "10 ** 100000 is over the 4,096-bit numbers allowed",
    "{{ (2 ** 4000) * (2 ** 4000) }}": "a product over the 4,096-bit numbers allowed",
    "{{ 'ab' * 99999 + 'cd' * 99999 }}": "over the 100,000 allowed",
    # loops, at any depth
    "{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}": (
        "over the 2,000 loop iterations a render may make"
    ),
    "{% for i in range(10**9) %}{% endfor %}": "range of 1,000,000,000 numbers",
    "{% macro f(n) %}{% if n %}{% for i in range(10) %}{{ f(n - 1) }}{% endfor %}{% endif %}"
    "{% endmacro %}{{ f(6) }}": "loop iterations",
    # strings built step by step
    "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}": "is over the 100,000 allowed",
    "{{ range(2000) | map('center', 99999) | join }}": "characters a render may build",
    # one call that would allocate a huge value at once
    "{{ '%0999999999d' % 1 }}": "a format width of 999,999,999",
    "{{ '%*d' % (10, 1) }}": "'*' widths are not allowed",
    "{{ '{:>999999999}'.format(1) }}": "a format width of 999,999,999",
    "{{ '{:>{w}}'.format(1, w=10) }}": "nested format fields are not allowed",
    "{{ 'x' | center(10**9) }}": "center width of 1,000,000,000",
    "{{ 'x' | center(999999999) }}": "center width of 999,999,999",
    "{{ 'x'.center(999999999) }}": "center() width of 999,999,999",
    "{{ 'x'.ljust(999999999) }}": "ljust() width of 999,999,999",
    "{{ '%s' | format('x') | indent(999999999) }}": "is over the 100,000 allowed",
    "{{ [1] | batch(10**9, 0) | list }}": "batch size of 1,000,000,000",
    "{{ [1] | slice(999999999) | list }}": "slice count of 999,999,999",
    "{{ ('x' * 99999) | replace('x', 'yy') }}": "is over the 100,000 allowed",
    "{{ ('x' * 50000).replace('', 'yy') }}": "is over the 100,000 allowed",
    "{{ ','.join(['x' * 60000, 'y' * 60000]) }}": "is over the 100,000 allowed",
    "{% set s = 'x' * 99999 %}{{ [[s]] * 1000 }}": "is over the 100,000 allowed",
    "{% set s = 'x' * 99999 %}{{ ([[s]] * 1000) | string }}": "is over the 100,000 allowed",
    # output
    "{% for i in range(2000) %}{{ 'x' * 99 }}{% endfor %}": (
        "output is over the 16,000 characters allowed"
    ),
    "{{ big }}": "output is over the 16,000 characters allowed",
    # time
    "{% for i in range(2000) %}{{ range(2000) | select('odd') | sum }}{% endfor %}": (
        "over the 100 ms a render may take"
    ),
}


@pytest.mark.parametrize("source", list(HOSTILE))
def test_a_template_over_a_bound_is_a_render_error_naming_it(
    renderer: TemplateRenderer, source: str
) -> None:
    started = time.monotonic()
    template = renderer.compile(source)  # compiles at once: nothing is folded
    assert time.monotonic() - started < 0.5
    with pytest.raises(RenderError) as caught:
        render_template(template, {"big": "x" * 900_000})
    assert time.monotonic() - started < 0.5
    assert HOSTILE[source] in str(caught.value)
    assert str(caught.value).startswith("template ")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 ** 2 }}", "1024 0.5 2.25"),
        ("{{ 10 * 3 }} {{ [0] * 2 }} {{ 3 * 'x' }}", "30 [0, 0] xxx"),
        ("{{ 'a' + 'b' }} {{ [1] + [2] }} {{ 1 + 2 }}", "ab [1, 2] 3"),
        ("{{ '%05.1f|%-3s|' % (3.14159, 'x') }}", "003.1|x  |"),
        ("{{ '{:>6,}'.format(12345) }}", "12,345"),
        ("{{ 'x' | center(5) }}|", "x  |"),
        ("{% for i in range(3) %}{% for j in range(3) %}{{ i * j }}{% endfor %}{% endfor %}", ""),
        ("{{ [1, 2, 3] | batch(2) | list }}", "[[1, 2], [3]]"),
        ("{{ 'a-b' | replace('-', '+') }}", "a+b"),
        ("{{ ['a', 'b'] | join(', ') }}", "a, b"),
    ],
)
def test_ordinary_templates_are_untouched(
    renderer: TemplateRenderer, source: str, expected: str
) -> None:
    if expected:
        assert render(renderer, source) == expected
    else:
        assert render(renderer, source) == "000012024"


def test_lipsum_is_gone(renderer: TemplateRenderer) -> None:
    with pytest.raises(RenderError, match="lipsum is undefined"):
        render(renderer, "{{ lipsum(n=10**9) }}")


def test_deep_recursion_is_a_render_error(renderer: TemplateRenderer) -> None:
    with pytest.raises(RenderError, match="recursed too deeply"):
        render(renderer, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")


def test_each_render_has_its_own_budget(renderer: TemplateRenderer) -> None:
    template = renderer.compile("{% for i in range(1500) %}{% endfor %}ok")
    for _ in range(5):
        assert render_template(template, {}) == "ok"


def test_hostile_constants_compile_at_once(tmp_path: Path) -> None:
    # Jinja folds constant expressions while compiling: these used to stall start-up.
    renderer = TemplateRenderer(tmp_path)
    started = time.monotonic()
    for source in ("{{ 'x' * 10**9 }}", "{{ 10**100000 }}", "{{ 'x' | center(999999999) }}"):
        renderer.compile(source)
    assert time.monotonic() - started < 0.5
