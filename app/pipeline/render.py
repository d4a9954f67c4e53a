"""Stage 4: render a destination's templates against an event, and measure the SMS body.

Templates are compiled once (when the destinations file loads) by a `TemplateRenderer`;
per event, `render_template` only renders. Everything here is pure: no network, no Redis.

Security model: templates come from the operator's config and always run in Jinja's
sandbox; event values are only ever *data* in the render context, never template source,
so an event property holding `{{ 7*7 }}` is sent literally.

Body measurement follows Twilio: the 1600 limit is in UTF-16 code units, and segments are
counted for GSM-7 (160 / 153 septets) or UCS-2 (70 / 67 units).
"""

from __future__ import annotations

import functools
import unicodedata
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import jinja2
from jinja2 import FileSystemLoader, nodes
from jinja2.exceptions import SecurityError

from app.pipeline.sandbox import (
    MAX_OUTPUT_CHARS,
    BoundedSandbox,
    RenderBoundExceeded,
    UndefinedVariable,
    budgeted,
)

__all__ = [
    "ELLIPSIS",
    "MAX_BODY_LENGTH",
    "BodyStats",
    "BodyTooLong",
    "Encoding",
    "OverflowPolicy",
    "RenderError",
    "SmsTemplate",
    "TemplateConfigError",
    "TemplateRenderer",
    "fit_body",
    "measure_body",
    "render_template",
    "utf16_length",
]


class RenderError(Exception):
    """A template failed to render for one event (undefined variable, sandbox refusal, …)."""


class TemplateConfigError(Exception):
    """A template does not compile, or its file is missing: a configuration error."""


# --------------------------------------------------------------------------- templates


class TemplateRenderer:
    """Compiles inline and file templates in one sandboxed Jinja environment.

    Built once per process; the templates it returns are kept by the caller and rendered
    with `render_template`, so nothing is compiled per event.
    """

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        # The *immutable* sandbox also refuses mutating methods such as `dict.update` /
        # `list.append`: one destination's template must not be able to change the event
        # context that the next destination renders. Strict about undefined variables: a
        # missing variable is an error, not a silently empty SMS. Bounded in time and
        # size (`app.pipeline.sandbox`). autoescape off: SMS is plain text, HTML escaping
        # would corrupt `&`, `<`, quotes.
        self.environment = BoundedSandbox(
            loader=FileSystemLoader(self.templates_dir),
            autoescape=False,
            keep_trailing_newline=False,
        )
        self.environment.template_class = SmsTemplate
        self._compiled: dict[str, jinja2.Template] = {}

    def compile(self, source: str) -> jinja2.Template:
        """Compile an inline template; raise `TemplateConfigError` if it does not parse.

        The same source compiles once (templates are immutable): destinations sharing a
        template, the default `to` above all, share its ~3 KB of compiled code.
        """
        if source in self._compiled:
            return self._compiled[source]
        try:
            template = self.environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateConfigError(_describe_syntax_error(exc, None)) from None
        except Exception as exc:  # the config is reported, never crashes start-up or check-config
            raise TemplateConfigError(_compile_failure(exc)) from None
        self._compiled[source] = self._with_lookups(template, source)
        return self._compiled[source]

    def _with_lookups(self, template: jinja2.Template, source: str) -> jinja2.Template:
        if isinstance(template, SmsTemplate):
            template.lookups = _lookups_of(self.environment.parse(source))
        return template

    def load(self, name: str) -> jinja2.Template:
        """Compile the template file `name` (relative to the templates directory).

        Raises `TemplateConfigError` when the name leaves the directory, the file is
        missing or unreadable, or the template does not parse.
        """
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
            # FileSystemLoader would refuse `..` too (or silently re-root an absolute path
            # under the directory); say plainly why instead of "not found".
            raise TemplateConfigError(
                f"template {name!r}: must be a relative path inside {self.templates_dir} "
                "(no absolute path, '..' or backslash)"
            )
        try:
            template = self.environment.get_template(name)
            source, _, _ = self.environment.loader.get_source(self.environment, name)  # type: ignore[union-attr]
            return self._with_lookups(template, source)
        except jinja2.TemplateNotFound:
            where = (
                str(self.templates_dir)
                if self.templates_dir.is_dir()
                else f"{self.templates_dir} (directory does not exist)"
            )
            raise TemplateConfigError(f"template file {name!r} not found in {where}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateConfigError(_describe_syntax_error(exc, name)) from None
        except UnicodeDecodeError as exc:
            raise TemplateConfigError(f"template file {name!r} is not valid UTF-8: {exc}") from None
        except Exception as exc:  # OSError, TemplateError, anything compiling could raise
            raise TemplateConfigError(f"template file {name!r}: {_compile_failure(exc)}") from None


def _compile_failure(exc: Exception) -> str:
    """A compiler failure in words (Python's class names mean nothing to the reader)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to compile"
    return f"cannot be compiled: {exc}"


def _describe_syntax_error(exc: jinja2.TemplateSyntaxError, name: str | None) -> str:
    # Jinja marks the exception "translated" once it rewrites the traceback, after which
    # str(exc) drops the line number; build a one-line message ourselves.
    where = f"template {name!r}, line {exc.lineno}" if name else f"line {exc.lineno}"
    return f"{where}: {exc.message or type(exc).__name__}"


class SmsTemplate(jinja2.Template):
    """A compiled template that also knows when it is only text and plain lookups.

    Most SMS templates are ``Hi {{ person.properties.name | default('there') }}, …``: for
    those the values are looked up in the event's dicts directly (~10x cheaper than a
    Jinja render); any doubt at all (a missing key before the last, a value that is not a
    string or number, a name that could reach a dict method or a private attribute) falls
    back to the sandboxed render, so the output and every error are Jinja's own.
    """

    lookups: tuple[str | _Lookup, ...] | None = None


@dataclass(frozen=True, slots=True)
class _Lookup:
    """``{{ root.key.key }}`` / ``{{ root["key"] }}``: a variable and a path of dict keys;
    with ``| default('text')`` (or ``| d(…)``), the text printed when the last key is
    missing or null (the sandbox's `default`)."""

    root: str
    path: tuple[str, ...]
    default: str | None = None


# Names Jinja would resolve to a dict's own attribute (``items``, ``get``…) before a key.
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _lookups_of(tree: nodes.Template) -> tuple[str | _Lookup, ...] | None:
    """The template as literal text and plain lookups, or None when it is anything more."""
    parts: list[str | _Lookup] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
                continue
            lookup = _defaulted_lookup_of(node) or _lookup_of(node)
            if lookup is None:
                return None
            parts.append(lookup)
    return tuple(parts)


def _defaulted_lookup_of(node: nodes.Node) -> _Lookup | None:
    """``lookup | default('text')``: one constant string argument, nothing else."""
    if not (
        isinstance(node, nodes.Filter)
        and node.name in ("default", "d")
        and node.node is not None
        and len(node.args) == 1
        and isinstance(node.args[0], nodes.Const)
        and isinstance(node.args[0].value, str)
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
    ):
        return None
    lookup = _lookup_of(node.node)
    return None if lookup is None else _Lookup(lookup.root, lookup.path, node.args[0].value)


def _lookup_of(node: nodes.Node) -> _Lookup | None:
    path: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        else:
            return None
        if key.startswith("_") or key in _DICT_ATTRIBUTES:
            return None
        path.append(key)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return _Lookup(node.name, tuple(reversed(path)))


_MISSING = object()


def _render_lookups(parts: tuple[str | _Lookup, ...], context: Mapping[str, Any]) -> str | None:
    """The text Jinja would render, or None whenever a part needs Jinja itself."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        # A name missing from the context may be a global (``range``): Jinja's to say.
        value = context.get(part.root, _MISSING)
        for key in part.path:
            if type(value) is not dict:
                return None  # a missing owner is Jinja's error even with a default
            value = value.get(key, _MISSING)
        kind = type(value)
        if kind is str:
            out.append(value)
        elif kind is int or kind is float:
            out.append(str(value))
        elif part.default is not None and (value is None or (value is _MISSING and part.path)):
            out.append(part.default)
        elif value is None:
            out.append("")  # JSON null prints as nothing, as the sandbox's `finalize` does
        else:
            return None  # missing (Jinja's error message), bool, containers…
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _globals_of(template: jinja2.Template) -> dict[str, Any]:
    return dict(template.globals)


_OUTPUT_BOUND = f"template output is over the {MAX_OUTPUT_CHARS:,} characters allowed"


def render_template(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render a compiled template for one event; the result is stripped of outer whitespace.

    Every failure becomes `RenderError`: an undefined variable (named by its whole path,
    ``person.properties.phone is undefined``), a sandbox refusal (`__class__` and
    friends), a bound of the sandbox (loop steps, time, size: `app.pipeline.sandbox`), an
    output over `MAX_OUTPUT_CHARS`, and any exception raised by the template's own
    expressions (`"ZeroDivisionError: division by zero"`). JSON null renders as "".
    """
    if not isinstance(template.environment, BoundedSandbox):
        # A programming error, not a bad event: templates must come from TemplateRenderer.
        raise TypeError("render_template only renders templates compiled in the sandbox")
    lookups = getattr(template, "lookups", None)
    if lookups is not None:
        text = _render_lookups(lookups, context)
        if text is not None:
            if len(text) > MAX_OUTPUT_CHARS:
                raise RenderError(_OUTPUT_BOUND)
            return text.strip()
    try:
        with budgeted():
            # What `template.render` does, minus rebuilding a dict from the globals ChainMap
            # on every call (the bulk of a small template's render time); chunk by chunk, so
            # that an oversized output stops where it crosses the bound.
            ctx = template.new_context({**_globals_of(template), **context}, shared=True)
            chunks: list[str] = []
            size = 0
            for chunk in template.root_render_func(ctx):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise RenderBoundExceeded(_OUTPUT_BOUND)
                chunks.append(chunk)
            text = "".join(chunks)
    except RenderBoundExceeded as exc:
        raise RenderError(str(exc)) from None
    except SecurityError as exc:
        # The sandbox turns unsafe attributes into undefined values; using them raises
        # SecurityError (not UndefinedError), so this branch comes first.
        raise RenderError(f"unsafe template operation refused by the sandbox: {exc}") from exc
    except UndefinedVariable as exc:
        raise RenderError(describe_undefined(exc, context)) from None
    except jinja2.UndefinedError as exc:
        raise RenderError(str(exc)) from exc
    except RecursionError:
        raise RenderError("template stopped: it recursed too deeply") from None
    except Exception as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    # Template files end with a newline, and indentation inside blocks is easy to leak.
    return text.strip()


# An undefined variable's path is found by looking for its owner in the context; a
# context is a few small dicts, but an event's properties can be big.
_PATH_SEARCH_LIMIT = 10_000


def describe_undefined(error: UndefinedVariable, context: Mapping[str, Any]) -> str:
    """``person.properties.phone is undefined``: the whole path of what was looked up."""
    name = error.name
    if error.owner is UndefinedVariable.MISSING:
        return f"{name} is undefined"
    path = _path_of(error.owner, context)
    if path is None:
        owner = type(error.owner).__name__
        return f"{_step(name).lstrip('.')} is undefined (looked up on a {owner} value)"
    return f"{path}{_step(name)} is undefined"


def _step(key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]"


def _path_of(target: Any, context: Mapping[str, Any]) -> str | None:
    """Where `target` sits in the context (``person.properties``), by identity."""
    queue: deque[tuple[str, Any]] = deque(context.items())
    visited = 0
    while queue and visited < _PATH_SEARCH_LIMIT:
        path, value = queue.popleft()
        visited += 1
        if value is target:
            return path
        if type(value) is dict:
            queue.extend((path + _step(k), v) for k, v in value.items())
        elif type(value) is list:
            queue.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return None


# --------------------------------------------------------------------------- SMS body

MAX_BODY_LENGTH = 1600
"""Twilio's limit for `Body`, in UTF-16 code units (error 21617 beyond it)."""

ELLIPSIS = "\u2026"
"""Appended to a truncated body: 1 UTF-16 unit, but not in GSM-7, so a truncated body
is always UCS-2."""

Encoding = Literal["GSM-7", "UCS-2"]
OverflowPolicy = Literal["reject", "truncate"]

# GSM 03.38 default alphabet, in table order (0x00-0x7F). 0x1B is ESC (the escape to the
# extension table), not a character, so it is deliberately absent.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + code, so costs 2 septets.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7_ALL = _GSM7_BASIC | _GSM7_EXTENSION

_GSM7_SINGLE_SEGMENT = 160
_GSM7_MULTI_SEGMENT = 153  # 7 septets go to the concatenation header
_UCS2_SINGLE_SEGMENT = 70
_UCS2_MULTI_SEGMENT = 67  # 3 units go to the concatenation header

_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class BodyStats:
    """What a body costs: Twilio length (UTF-16 units), encoding and segment count."""

    length: int
    encoding: Encoding
    segments: int


class BodyTooLong(Exception):
    """The body exceeds `MAX_BODY_LENGTH` UTF-16 units and the policy is "reject"."""

    def __init__(self, length: int, limit: int = MAX_BODY_LENGTH) -> None:
        super().__init__(f"body is {length} characters (UTF-16 units); the limit is {limit}")
        self.length = length
        self.limit = limit


def utf16_length(text: str) -> int:
    """Length of `text` in UTF-16 code units, as Twilio counts it (astral chars count 2)."""
    # surrogatepass: a lone surrogate (possible from JSON "\\ud83d") counts as one unit
    # instead of raising here.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _char_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _count_segments(costs: Iterable[int], total: int, single: int, multi: int) -> int:
    """Segments for a message whose characters cost `costs` units each (empty: 1 each).

    A character is never split across segments (an extension char's ESC+code pair in
    GSM-7, a surrogate pair in UCS-2): when it does not fit, it moves to the next segment,
    as handsets and Twilio's segment calculator do. With only 1-unit characters this is
    exactly ceil(total / multi).
    """
    if total <= single:
        return 1
    if not costs:  # every character costs 1 unit
        return -(-total // multi)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments += 1
            used = 0
        used += cost
    return segments


def measure_body(body: str) -> BodyStats:
    """Length, encoding and segment count of an SMS body, as Twilio would bill it.

    GSM-7 when every character is in the GSM 03.38 default alphabet or its extension
    table (extension characters cost 2 septets); otherwise UCS-2 (UTF-16 units).
    An empty body is measured as 1 segment of length 0 (Twilio rejects empty bodies; this
    only reports what such a message would cost, the caller decides whether to send it).
    Twilio's "smart encoding" (replacing e.g. curly quotes by GSM look-alikes) is not
    modelled: the measurement is of the body exactly as sent.
    """
    length = utf16_length(body)
    # Set operations run in C; the per-character walk is only needed when characters of
    # two different costs are mixed (extension chars in GSM-7, astral chars in UCS-2).
    if _GSM7_ALL.issuperset(body):
        if _GSM7_EXTENSION.isdisjoint(body):
            segments = _count_segments((), length, _GSM7_SINGLE_SEGMENT, _GSM7_MULTI_SEGMENT)
            return BodyStats(length=length, encoding="GSM-7", segments=segments)
        costs = [2 if c in _GSM7_EXTENSION else 1 for c in body]
        septets = sum(costs)
        segments = _count_segments(costs, septets, _GSM7_SINGLE_SEGMENT, _GSM7_MULTI_SEGMENT)
        return BodyStats(length=length, encoding="GSM-7", segments=segments)
    costs_ucs2: Iterable[int] = () if length == len(body) else (_char_units(c) for c in body)
    segments = _count_segments(costs_ucs2, length, _UCS2_SINGLE_SEGMENT, _UCS2_MULTI_SEGMENT)
    return BodyStats(length=length, encoding="UCS-2", segments=segments)


def _is_dangling(char: str) -> bool:
    # Combining marks (Mn/Me, which includes variation selectors) and ZWJ only make sense
    # attached to what followed or preceded them in the cut-off text; whitespace before "…"
    # just looks odd.
    return char == _ZWJ or char.isspace() or unicodedata.category(char) in ("Mn", "Me")


def _ends_with_half_flag(text: str) -> bool:
    # A flag is a pair of regional indicators; an odd run at the end is half a flag.
    run = 0
    while run < len(text) and "\U0001f1e6" <= text[-1 - run] <= "\U0001f1ff":
        run += 1
    return run % 2 == 1


def fit_body(body: str, on_overflow: OverflowPolicy, limit: int = MAX_BODY_LENGTH) -> str:
    """Return `body` if it fits in `limit` UTF-16 units, else apply the policy.

    "reject" raises `BodyTooLong`. "truncate" cuts at a code point boundary (never inside a
    surrogate pair), drops trailing combining marks / ZWJ / whitespace and a half flag,
    and appends "…" so that the result is at most `limit` units. A body that fits
    is returned as the very same object.
    """
    length = utf16_length(body)
    if length <= limit:
        return body
    if on_overflow == "reject":
        raise BodyTooLong(length, limit)
    if on_overflow != "truncate":
        raise ValueError(f"unknown overflow policy {on_overflow!r}")

    budget = limit - utf16_length(ELLIPSIS)
    used = end = 0
    # Walk code points (a str index is a code point), so a surrogate pair is never split.
    # The body is longer than the budget, so the walk stops before running off its end.
    while used + _char_units(body[end]) <= budget:
        used += _char_units(body[end])
        end += 1
    kept = body[:end]
    while kept and (_is_dangling(kept[-1]) or _ends_with_half_flag(kept)):
        kept = kept[:-1]
    return kept + ELLIPSIS
