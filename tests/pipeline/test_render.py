from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import jinja2
import pytest

from app.pipeline.render import (
    MAX_BODY_LENGTH,
    BodyStats,
    BodyTooLong,
    RenderError,
    TemplateConfigError,
    TemplateRenderer,
    fit_body,
    measure_body,
    render_template,
    utf16_length,
)

EMOJI = "😀"  # U+1F600: outside the BMP, 2 UTF-16 units


@pytest.fixture
def renderer(tmp_path: Path) -> TemplateRenderer:
    return TemplateRenderer(tmp_path)


def render(renderer: TemplateRenderer, source: str, **context: Any) -> str:
    return render_template(renderer.compile(source), context)


# --------------------------------------------------------------------------- rendering


def test_environment_is_sandboxed_strict_and_plain_text(renderer: TemplateRenderer) -> None:
    env = renderer.environment
    assert isinstance(env, jinja2.sandbox.ImmutableSandboxedEnvironment)
    assert issubclass(env.undefined, jinja2.StrictUndefined)
    assert render(renderer, "{{ x }}", x="<b>&'\"") == "<b>&'\""


def test_renders_and_strips(renderer: TemplateRenderer) -> None:
    person = {"properties": {"first_name": "Ada"}}
    assert render(renderer, "  Hi {{ person.properties.first_name }}!\n\n", person=person) == (
        "Hi Ada!"
    )


def test_default_filter_covers_a_missing_key(renderer: TemplateRenderer) -> None:
    source = "Hi {{ person.properties.name | default('there') }}"
    assert render(renderer, source, person={"properties": {}}) == "Hi there"
    assert render(renderer, source, person={"properties": {"name": "Ada"}}) == "Hi Ada"


def test_undefined_variable_names_its_whole_path(renderer: TemplateRenderer) -> None:
    person = {"properties": {"tags": [{"a": 1}]}}
    cases = {
        "{{ person.properties.phone }}": "person.properties.phone is undefined",
        "{{ person['properties']['phone'] }}": "person.properties.phone is undefined",
        "{{ person.properties['$set'] }}": "person.properties['$set'] is undefined",
        "{{ person.properties.tags[0].b }}": "person.properties.tags[0].b is undefined",
        "{{ person.properties.tags[3] }}": "person.properties.tags[3] is undefined",
        "{{ foo }}": "foo is undefined",
        "{{ foo.bar }}": "foo is undefined",
        "{% if foo %}x{% endif %}": "foo is undefined",
        "{% for t in person.properties.tags %}{{ t.nope }}{% endfor %}": (
            "person.properties.tags[0].nope is undefined"
        ),
        "{{ ({'a': 1}).b }}": "b is undefined (looked up on a dict value)",
    }
    for source, message in cases.items():
        with pytest.raises(RenderError) as caught:
            render(renderer, source, person=person)
        assert str(caught.value) == message, source
        assert "dict object" not in str(caught.value)


def test_null_renders_as_nothing(renderer: TemplateRenderer) -> None:
    # PostHog `$set` nulls and Segment trait nulls alike.
    person = {"properties": {"first_name": None, "lastName": None, "plan": "pro"}}
    assert render(renderer, "Hi {{ person.properties.first_name }}!", person=person) == "Hi !"
    assert render(renderer, "{{ person.properties.first_name ~ 'x' }}", person=person) == "x"
    assert render(renderer, "{{ [person.properties.first_name] | join(',') }}x", person=person)
    assert render(renderer, "{% if person.properties.first_name %}y{% endif %}n", person=person)
    assert render(renderer, "{{ none }}|{{ person.properties.plan }}", person=person) == "|pro"


def test_default_applies_to_null_as_to_a_missing_key(renderer: TemplateRenderer) -> None:
    person = {"properties": {"first_name": None, "empty": ""}}
    for source, expected in {
        "{{ person.properties.first_name | default('there') }}": "there",
        "{{ person.properties.first_name | d('there') }}": "there",
        "{{ person.properties.missing | default('there') }}": "there",
        "{{ person.properties.empty | default('there') }}": "",
        "{{ person.properties.empty | default('there', true) }}": "there",
        "{{ person.properties.first_name | default(none) }}x": "x",
    }.items():
        assert render(renderer, source, person=person) == expected, source


def test_event_values_are_data_not_templates(renderer: TemplateRenderer) -> None:
    template = renderer.compile("{{ event.properties.text }}")
    for payload in ("{{ 7*7 }}", "{{ ''.__class__.__mro__ }}", "{% raw %}x", "{# c #}"):
        assert render_template(template, {"event": {"properties": {"text": payload}}}) == payload


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() | length }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{{ '{0.__class__}'.format('') }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_render_errors(renderer: TemplateRenderer, source: str) -> None:
    # The sandbox makes `__class__` & co. undefined; StrictUndefined must turn any use of
    # that into an error rather than an empty string.
    with pytest.raises(RenderError, match="unsafe"):
        render(renderer, source)


def test_templates_cannot_mutate_the_shared_event_context(renderer: TemplateRenderer) -> None:
    context: dict[str, Any] = {"event": {"properties": {"a": 1}, "tags": ["x"]}}
    template = renderer.compile("{{ event.properties.update({'a': 2}) }}")
    with pytest.raises(RenderError, match="unsafe"):
        render_template(template, context)
    with pytest.raises(RenderError, match="unsafe"):
        render_template(renderer.compile("{{ event.tags.append('y') }}"), context)
    assert context == {"event": {"properties": {"a": 1}, "tags": ["x"]}}


def test_other_exceptions_are_render_errors_with_their_type(renderer: TemplateRenderer) -> None:
    with pytest.raises(RenderError, match=r"^ZeroDivisionError: division by zero$"):
        render(renderer, "{{ 1 / 0 }}")
    with pytest.raises(RenderError, match=r"^TypeError: "):
        render(renderer, "{{ n + 'x' }}", n=1)
    with pytest.raises(RenderError, match=r"range of 1,000,000,000 numbers is over the 2,000"):
        render(renderer, "{{ range(10**9) | list }}")


def test_unsandboxed_templates_are_refused() -> None:
    with pytest.raises(TypeError, match="sandbox"):
        render_template(jinja2.Environment().from_string("hi"), {})


def test_inline_syntax_error_is_a_config_error(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateConfigError, match=r"^line 1: unexpected end of template"):
        renderer.compile("{{ oops")
    with pytest.raises(TemplateConfigError, match=r"^line 2: Expected an expression"):
        renderer.compile("ok\n{% if %}")
    with pytest.raises(TemplateConfigError, match=r"^line 1: No filter named 'nope'"):
        renderer.compile("{{ x | nope }}")


def test_load_template_file(tmp_path: Path, renderer: TemplateRenderer) -> None:
    (tmp_path / "welcome.txt").write_text("Hi {{ name }},\nwelcome!\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.txt").write_text("nested {{ n }}\n", encoding="utf-8")
    assert render_template(renderer.load("welcome.txt"), {"name": "Ada"}) == "Hi Ada,\nwelcome!"
    assert render_template(renderer.load("sub/nested.txt"), {"n": 1}) == "nested 1"


def test_load_missing_or_escaping_template(tmp_path: Path, renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateConfigError, match=r"'nope\.txt' not found in .*"):
        renderer.load("nope.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(TemplateConfigError, match="not found"):
        renderer.load("sub")  # a directory is not a template
    for name in ("../secret.txt", "sub/../../secret.txt", "/etc/passwd", ""):
        with pytest.raises(TemplateConfigError, match="inside"):
            renderer.load(name)
    missing_dir = TemplateRenderer(tmp_path / "absent")
    with pytest.raises(TemplateConfigError, match="directory does not exist"):
        missing_dir.load("x.txt")


def test_load_template_file_with_syntax_error(tmp_path: Path, renderer: TemplateRenderer) -> None:
    (tmp_path / "bad.txt").write_text("line one\nHi {{ name\n", encoding="utf-8")
    with pytest.raises(TemplateConfigError, match=r"^template 'bad\.txt', line 2: "):
        renderer.load("bad.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(TemplateConfigError, match="not valid UTF-8"):
        renderer.load("latin1.txt")


def test_repository_templates_compile() -> None:
    templates = Path(__file__).resolve().parents[2] / "templates"
    renderer = TemplateRenderer(templates)
    for path in sorted(templates.glob("*.txt")):
        renderer.load(path.name)


# --------------------------------------------------------------------------- length


def test_utf16_length() -> None:
    assert utf16_length("") == 0
    assert utf16_length("abc") == 3
    assert utf16_length("é€中") == 3
    assert utf16_length(EMOJI) == 2
    assert utf16_length("👨‍👩‍👧") == 8  # 3 astral emoji + 2 ZWJ


def test_fit_body_ascii_boundary() -> None:
    fits = "a" * MAX_BODY_LENGTH
    assert fit_body(fits, "reject") is fits
    assert fit_body(fits, "truncate") is fits
    over = "a" * (MAX_BODY_LENGTH + 1)
    with pytest.raises(BodyTooLong) as info:
        fit_body(over, "reject")
    assert info.value.length == 1601
    assert "1601" in str(info.value)
    cut = fit_body(over, "truncate")
    assert cut == "a" * 1599 + "…"
    assert utf16_length(cut) == MAX_BODY_LENGTH


def test_emoji_count_as_two_units() -> None:
    assert fit_body(EMOJI * 800, "reject") == EMOJI * 800
    with pytest.raises(BodyTooLong) as info:
        fit_body(EMOJI * 801, "reject")
    assert info.value.length == 1602


def assert_valid_truncation(result: str) -> None:
    assert utf16_length(result) <= MAX_BODY_LENGTH
    assert result.endswith("…")
    result.encode("utf-16", "strict")  # no lone surrogate
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in result)


def test_truncate_emoji_text_keeps_whole_emoji() -> None:
    for text in (EMOJI * 801, "a" + EMOJI * 800, "ab" + EMOJI * 900):
        result = fit_body(text, "truncate")
        assert_valid_truncation(result)
        assert set(result[:-1]) <= {"a", "b", EMOJI}
        assert result[:-1].lstrip("ab") == EMOJI * result[:-1].lstrip("ab").count(EMOJI)
    # 1599 units of budget: the emoji that would straddle it is dropped whole.
    assert fit_body("a" + EMOJI * 800, "truncate") == "a" + EMOJI * 799 + "…"


def test_truncate_does_not_leave_dangling_joiners_or_marks() -> None:
    family = "👨\u200d👩\u200d👧"
    # Pad so that the cut falls right after a ZWJ.
    text = "a" * (1599 - 3) + family
    result = fit_body(text, "truncate")
    assert_valid_truncation(result)
    assert result == "a" * 1596 + "👨…"
    # A combining acute accent (Mn) right at the cut is dropped together with the space.
    text = "a" * 1597 + " \u0301" + "b" * 10
    result = fit_body(text, "truncate")
    assert result == "a" * 1597 + "…"
    assert unicodedata.category(result[-2]) == "Ll"
    # Half a flag (one regional indicator) is dropped.
    flag = "🇫🇷"
    text = "a" * 1597 + flag + "b"
    assert fit_body(text, "truncate") == "a" * 1597 + "…"
    text = "a" * 1595 + flag + flag
    assert fit_body(text, "truncate") == "a" * 1595 + flag + "…"


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="policy"):
        fit_body("a" * 1601, "drop")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("body", "encoding", "length"),
    [
        ("Hello, world! 123 @ $ _ ?", "GSM-7", 25),
        ("Café déjà vu? É Ç à ü ß Ø Å ¿¡ § £ ¥ ¤ ΔΦΓΛΩΠΨΣΘΞ\r\n", "GSM-7", 51),
        ("Price: 5€ [ok] {x} ~ | ^ \\ \f", "GSM-7", 28),
        ("ça va", "UCS-2", 5),  # lowercase ç is not in GSM 03.38, only Ç is
        ("`backtick`", "UCS-2", 10),
        ("curly ’quote’", "UCS-2", 13),
        ("hi " + EMOJI, "UCS-2", 5),
        ("你好", "UCS-2", 2),
        ("\x1b", "UCS-2", 1),  # ESC is an escape code, not a character
        ("…", "UCS-2", 1),
    ],
)
def test_encoding_detection(body: str, encoding: str, length: int) -> None:
    stats = measure_body(body)
    assert (stats.encoding, stats.length) == (encoding, length)


def test_whole_gsm_03_38_table_is_gsm7() -> None:
    basic = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert len(set(basic)) == 127  # 128 positions minus ESC
    assert measure_body(basic) == BodyStats(127, "GSM-7", 1)
    extension = "\f^{}\\[~]|€"
    assert measure_body(extension) == BodyStats(10, "GSM-7", 1)
    assert measure_body(extension * 8).segments == 1  # 160 septets
    assert measure_body(extension * 8 + "a").segments == 2


def test_extension_characters_cost_two_septets() -> None:
    assert measure_body("€" * 80) == BodyStats(length=80, encoding="GSM-7", segments=1)
    assert measure_body("€" * 81).segments == 2  # 162 septets
    assert measure_body("a" * 159 + "{").segments == 2  # 161 septets
    assert measure_body("é" * 160).segments == 1  # basic-table letters cost 1


@pytest.mark.parametrize(
    ("septets", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (1600, 11)]
)
def test_gsm7_segments(septets: int, segments: int) -> None:
    assert measure_body("a" * septets) == BodyStats(septets, "GSM-7", segments)


@pytest.mark.parametrize(
    ("units", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (1600, 24)]
)
def test_ucs2_segments(units: int, segments: int) -> None:
    assert measure_body("ç" * units) == BodyStats(units, "UCS-2", segments)


def test_emoji_segments() -> None:
    assert measure_body(EMOJI * 35) == BodyStats(70, "UCS-2", 1)
    assert measure_body(EMOJI * 36) == BodyStats(72, "UCS-2", 2)
    # 67 emoji = 134 units, but a surrogate pair cannot straddle a segment: each
    # 67-unit segment holds 33 emoji, so 3 segments where ceil(134 / 67) would say 2.
    assert measure_body(EMOJI * 67) == BodyStats(134, "UCS-2", 3)


def test_extension_character_is_not_split_across_segments() -> None:
    # 306 septets, so ceil(306 / 153) would say 2; but the "€" (ESC + code) does not fit
    # in the first segment's last septet and moves whole to the second, pushing the last
    # "a" into a third.
    body = "a" * 152 + "€" + "a" * 152
    assert measure_body(body) == BodyStats(305, "GSM-7", 3)
    body = "a" * 152 + "€" + "a" * 151  # the second segment is exactly full
    assert measure_body(body).segments == 2


def test_empty_body_is_one_segment_of_length_zero() -> None:
    assert measure_body("") == BodyStats(0, "GSM-7", 1)


def test_truncated_gsm_body_becomes_ucs2() -> None:
    # "…" is not GSM-7: truncation switches the encoding, which costs more segments.
    result = fit_body("a" * 2000, "truncate")
    assert measure_body(result) == BodyStats(1600, "UCS-2", 24)
