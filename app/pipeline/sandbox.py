"""The sandbox templates render in: Jinja's, plus bounds on what one render may cost.

Templates come from the operator, but what they render comes from anyone holding an
analytics key, and rendering runs on the API's event loop: no render may hold it. Jinja's
sandbox keeps templates away from Python's internals; this module bounds their cost:

- loop iterations per render (any ``for``, at any depth): `MAX_LOOP_STEPS`; ``range``
  yields at most as many numbers;
- time per render: `MAX_RENDER_SECONDS`, checked at every loop step and every bounded
  operation;
- text and lists built per render by ``*``, ``+``, ``~``, ``%``, filters and method calls:
  `MAX_BUILT_CHARS` in all and `MAX_VALUE_CHARS` for any one value, checked *before*
  building it wherever one operation could allocate it in one go (``'x' * 10**9``,
  ``center(10**9)``, ``'%0999999999d'``, ``batch(10**9)``…);
- numbers: no ``*`` or ``**`` result over `MAX_INT_BITS` bits;
- the output: `MAX_OUTPUT_CHARS` (see `render.render_template`).

A render over a bound raises `RenderBoundExceeded` naming the bound. Intercepting the
operators also stops Jinja from evaluating them while it compiles (constant folding), so
``{{ 10 ** 100000 }}`` in a destinations file can no longer stall start-up.

JSON ``null`` prints as an empty string (`finalize`, and ``~``) and ``| default(…)`` applies
to it as to a missing value: a person whose ``first_name`` is null is never texted "None".
"""

from __future__ import annotations

import functools
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import BuiltinMethodType, MethodType
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_LOOP_STEPS = 2_000
# A backstop for work the other bounds do not count (filters over big lists): generous,
# so that a loaded machine never fails an ordinary template (they render in well under 1 ms).
MAX_RENDER_SECONDS = 0.1
MAX_VALUE_CHARS = 100_000
MAX_BUILT_CHARS = 1_000_000
MAX_INT_BITS = 4_096
MAX_OUTPUT_CHARS = 16_000
"""Ten times Twilio's 1,600-character limit: room for `on_overflow: truncate`."""


class RenderBoundExceeded(Exception):
    """A render went over one of the sandbox's bounds; the message names it."""


class UndefinedVariable(UndefinedError):
    """A template used a name or key the event does not have.

    Carries what was looked up (`name`) and on what (`owner`, `MISSING` for a top-level
    name), so that the renderer can name the whole path (``person.properties.phone``).
    """

    MISSING: Any = object()

    def __init__(self, message: str, owner: Any, name: Any) -> None:
        super().__init__(message)
        self.owner = owner
        self.name = name


class _PathUndefined(StrictUndefined):
    """Strict, and says what was looked up on what (the sandbox's own refusals unchanged)."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._undefined_exception is not UndefinedError:  # SecurityError
            return super()._fail_with_undefined_error(*args, **kwargs)
        owner = self._undefined_obj
        raise UndefinedVariable(
            self._undefined_message,
            UndefinedVariable.MISSING if owner is _JINJA_MISSING else owner,
            self._undefined_name,
        )


# Jinja binds the operators of its undefined classes to the base failing method itself.
for _name, _member in vars(Undefined).items() | vars(StrictUndefined).items():
    if _member is Undefined._fail_with_undefined_error and _name.startswith("__"):
        setattr(_PathUndefined, _name, _PathUndefined._fail_with_undefined_error)

_JINJA_MISSING: Any = Undefined()._undefined_obj  # jinja2.utils.missing


# --------------------------------------------------------------------------- the budget


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = 0
    built: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBoundExceeded(
                f"template stopped: over the {MAX_RENDER_SECONDS * 1000:.0f} ms a render may take"
            )


# The render under way: rendering never awaits, so the budget needs no passing around
# (and template code cannot reach it). Outside a render (Jinja folding constants while
# it compiles) it is unset, and every bounded operation refuses, which leaves it to run
# time, under a budget.
_CURRENT: ContextVar[_Budget] = ContextVar("smsdest_render_budget")


class budgeted:
    """Context manager: a fresh budget for one render."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _CURRENT.set(_Budget(time.monotonic() + MAX_RENDER_SECONDS))

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def _charge(chars: int) -> None:
    """Account for a value of `chars` characters (or items) about to be built."""
    budget = _CURRENT.get()
    if chars > MAX_VALUE_CHARS:
        raise RenderBoundExceeded(
            f"template stopped: a value of {chars:,} characters is over the "
            f"{MAX_VALUE_CHARS:,} allowed"
        )
    budget.built += chars
    if budget.built > MAX_BUILT_CHARS:
        raise RenderBoundExceeded(
            f"template stopped: over the {MAX_BUILT_CHARS:,} characters a render may build"
        )
    budget.tick()


def _weight(value: Any) -> int:
    """Characters a string holds; for a container, its items and everything in them.

    Counted to just past `MAX_BUILT_CHARS` at most, so the cost of counting is bounded
    too (``[[s]] * 1000`` holds `s` a thousand times over, though it is one list).
    """
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 0
    total, pending = 0, [value]
    while pending and total <= MAX_BUILT_CHARS:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            pending.extend(item)
    return total


def _charge_result(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict):
        _charge(_weight(value))
    return value


def loop_steps(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``for`` loop iterates through this: each step counts against the budget."""
    budget = _CURRENT.get()
    for item in iterable:
        budget.steps += 1
        if budget.steps > MAX_LOOP_STEPS:
            raise RenderBoundExceeded(
                f"template stopped: over the {MAX_LOOP_STEPS:,} loop iterations a render may make"
            )
        budget.tick()
        yield item


def budgeted_range(*args: int) -> range:
    """``range`` in templates: at most `MAX_LOOP_STEPS` numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_LOOP_STEPS:
        raise RenderBoundExceeded(
            f"template stopped: range of {len(numbers):,} numbers is over the "
            f"{MAX_LOOP_STEPS:,} allowed"
        )
    return numbers


# --------------------------------------------------------------------------- pre-checks

# printf-style conversion specs (`%-10s`, `%0*d`, `%.3f`): their widths and precisions.
_PERCENT_SPEC = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def _refuse_wide(width: int, what: str) -> None:
    if width > MAX_VALUE_CHARS:
        raise RenderBoundExceeded(
            f"template stopped: {what} of {width:,} is over the {MAX_VALUE_CHARS:,} "
            "characters a value may hold"
        )


def _check_percent_format(text: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*":
                raise RenderBoundExceeded("template stopped: '*' widths are not allowed")
            if number:
                _refuse_wide(int(number), "a format width")


def _check_brace_format(text: str) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise RenderBoundExceeded("template stopped: nested format fields are not allowed")
        for number in _DIGITS.findall(spec):
            _refuse_wide(int(number), "a format width")


def _int_bits(value: Any) -> int | None:
    return abs(value).bit_length() if type(value) is int else None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        base, exponent = _int_bits(left), _int_bits(right)
        if base is not None and exponent is not None and right > 0 and abs(left) > 1:
            bits = right * math.log2(abs(left))
            if bits > MAX_INT_BITS:
                raise RenderBoundExceeded(
                    f"template stopped: {left} ** {right} is over the {MAX_INT_BITS:,}-bit "
                    "numbers allowed"
                )
    elif operator == "*":
        left_bits, right_bits = _int_bits(left), _int_bits(right)
        if left_bits is not None and right_bits is not None:
            if left_bits + right_bits > MAX_INT_BITS:
                raise RenderBoundExceeded(
                    f"template stopped: a product over the {MAX_INT_BITS:,}-bit numbers allowed"
                )
        elif left_bits is not None or right_bits is not None:
            times, sequence = (left, right) if left_bits is not None else (right, left)
            if times > 0:
                _charge(_weight(sequence) * times)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and type(left) is type(right):
            _charge(_weight(left) + _weight(right))
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left)


_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not isinstance(obj, BuiltinMethodType | MethodType):
        return
    owner, name = getattr(obj, "__self__", None), obj.__name__
    if not isinstance(owner, str):
        return
    if name in _STR_WIDTH_METHODS:
        width = args[0] if args else kwargs.get("width")
        if type(width) is int:
            _refuse_wide(width, f"{name}() width")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if type(size) is int:
            _charge(len(owner) + owner.count("\t") * max(size, 0))
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args and isinstance(args[0], list | tuple):
        _charge(_weight(args[0]) + len(owner) * len(args[0]))


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        _charge(len(text) + hits * max(len(new) - len(old), 0))


# Filters that could build a huge value in one call: checked before they run.
def _pre_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if type(width) is int:
        _refuse_wide(width, "center width")


def _pre_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    indent = len(width) if isinstance(width, str) else width if type(width) is int else 0
    text = str(value)
    _charge(len(text) + (text.count("\n") + 1) * max(indent, 0))


def _pre_format(value: Any, *_: Any, **__: Any) -> None:
    _check_percent_format(str(value))


def _pre_replace(value: Any, old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    _check_replace(str(value), old, new)


def _pre_join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(value, list | tuple):
        _charge(_weight(value) + len(str(d)) * len(value))


def _pre_batch(value: Any, linecount: Any = 1, *_: Any, **__: Any) -> None:
    if type(linecount) is int:
        _refuse_wide(linecount, "batch size")


def _pre_slice(value: Any, slices: Any = 1, *_: Any, **__: Any) -> None:
    if type(slices) is int:
        _refuse_wide(slices, "slice count")


_FILTER_PRE_CHECKS: dict[str, Callable[..., None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "replace": _pre_replace,
    "join": _pre_join,
    "batch": _pre_batch,
    "slice": _pre_slice,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_PRE_CHECKS.get(name)
    # A filter marked pass_context & co. gets Jinja's context first: not the value.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # keeps Jinja's pass_context/eval_context marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[skip:], **kwargs)
        return _charge_result(func(*args, **kwargs))

    return bounded


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default``, which also replaces JSON null."""
    if value is None or isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def _finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: null as nothing; a container only within the bounds."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict | set | frozenset):
        _charge(_weight(value))  # before str() builds its text
    return value


# --------------------------------------------------------------------------- environment


class _BoundedCodeGenerator(CodeGenerator):
    """Every ``for`` loop iterates through `loop_steps`; ``~`` goes through `bounded_concat`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Jinja allows no custom node types: the loops' iterables are recognized by identity.
        self._loop_iterables: set[int] = set()

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iterables.add(id(node.iter))
        super().visit_For(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in self._loop_iterables:
            return super().visit(node, *args, **kwargs)
        self.write("environment.loop_steps(")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `~`: null joins as "" and the result is bounded, like every other string built.
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the bounds above, strict about undefined names."""

    # Intercepting an operator also keeps Jinja from folding it at compile time.
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=_PathUndefined, finalize=_finalize, **options)
        self.globals["range"] = budgeted_range
        del self.globals["lipsum"]  # lipsum(n=10**9) builds text nobody sends
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.filters["default"] = self.filters["d"] = _default

    loop_steps = staticmethod(loop_steps)

    @staticmethod
    def bounded_concat(values: tuple[Any, ...]) -> str:
        """``a ~ b``: null joins as an empty string; the result counts against the budget."""
        text = "".join("" if v is None else str(v) for v in values)
        _charge(len(text))
        return text

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _charge_result(self.binop_table[operator](left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_call(__obj, args, kwargs)
        return _charge_result(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_brace_format(value.__self__)
        return wrapped
