"""Render campaign templates (uploaded by marketers, so untrusted) in Jinja2's sandbox.

HTML templates are autoescaped, text templates are not; both run in an
ImmutableSandboxedEnvironment with StrictUndefined, so a template can neither
reach Python internals nor silently print nothing for a misspelt variable.
Compiled templates are cached by their source, which makes the send loop pay for
compiling a template version once, not once per message.

The sandbox keeps a template from reaching Python; it does not keep one from working
forever or filling the memory. `_BudgetedSandbox` adds that: every render gets a budget of
work (loop iterations, calls, filters, operators, comparisons, weighted by how much they
read), of memory (every value a call, filter, operator, slice or print builds, added up), of
characters written and of time (on the renderer's clock). What an operation will build is
estimated from its operands *before* it is built (a format string from its fields' widths,
a repetition from its count, a list's text from its items' repr) and counted after. A
template over any budget fails with a RenderError that says which; one that nests too deeply
for Jinja and Python to compile is a syntax error that says so.

Messages speak the friend's language: the built-in templates mark their words with
`{% trans %}` (Jinja's i18n extension, named variables, `{% pluralize %}` for counts), and a
message's context carries `gettext` and `ngettext` for its locale (`translation_values`), so
that the same source renders in every language and the renderer itself holds no locale.
Translated text is formatted within the render budget like any other format string.
"""

from __future__ import annotations

import gettext
import re
import secrets
import string
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache, wraps
from itertools import chain
from types import MappingProxyType
from typing import Any, Protocol

import css_inline
import markupsafe
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import Environment, StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.compiler import operators as COMPARE_OPERATORS
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

from engine.resources import TEMPLATE_DIR
from engine.sms import SegmentLimitExceeded, check_segments, smart_encode
from engine.template_files import TemplateName

DEFAULT_TEMPLATE_DIR = TEMPLATE_DIR / "campaign"
MAX_OUTPUT_CHARS = 512 * 1024
MAX_SUBJECT_CHARS = 200
# Links stay visible in a derived text part: "See the offer [https://…]" rather than a bare "See the offer".
_TEXT_FROM_HTML = ParserConfig(display_links=True)


class RenderError(ValueError):
    """A template failed to compile or render; str() says where and why."""


# -- the render budget ------------------------------------------------------------------
# A campaign's templates print a dozen values; these limits are far above what one needs and
# far below what would hold up a worker or fill its memory. The landing page renders on every
# anonymous view: it has smaller limits of work and time (MAX_LANDING_*).
MiB = 1024 * 1024
MAX_RENDER_STEPS = 100_000  # units of work in one render: loop iterations, calls, filters, operators...
WORK_UNIT_BYTES = 4 * 1024  # ...and one more for every 4 KiB of values an operation reads...
WORK_UNIT_ITEMS = 8  # ...and for every 8 items of a list (or dict) it walks to measure it
MAX_PRODUCED_CHARS = 4 * MAX_OUTPUT_CHARS  # all text written, {% set %} blocks and macros included
MAX_RENDER_BYTES = 16 * MiB  # the memory of every value one render builds, added up
MAX_RENDER_SECONDS = 2.0  # on the renderer's clock: a backstop for work nothing above counts
# The landing page renders on every anonymous view, a message once for one friend: the page
# gets a fraction of a message's work and time.
MAX_LANDING_STEPS = 20_000
MAX_LANDING_SECONDS = 0.25
# Pages that depend on their campaign only (the landing page) are kept, rendered, for the next
# view: so many of them, each up to so many characters (longer ones are rendered every time).
PAGE_CACHE_ENTRIES = 64
PAGE_CACHE_CHARS = 64 * 1024
MAX_RANGE = 10_000  # items in one range()
MAX_VALUE_CHARS = MAX_OUTPUT_CHARS  # any one value a template builds, by the characters it prints
MAX_NESTING = 8  # lists in lists (or dicts, namespaces) in one value
MAX_TEMPLATE_DEPTH = 64  # blocks and expressions inside each other in a template's source...
MAX_BLOCK_NESTING = 12  # ...of which blocks ({% for %}, {% if %}, {% macro %}...)
MAX_NUMBER_ARGUMENT = 10_000  # widths, counts, repetitions passed to functions and filters
MAX_INTEGER_BITS = 100_000  # big numbers: 10 ** 30000 is about this

# A format width or precision of 5 digits or more, or one taken from the arguments (`*`).
_WIDE_PERCENT_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{5,}|\d*\.(?:\*|\d{5,}))")
_WIDE_BRACE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\{|\d{5,})")
# One %-conversion: its width, its precision and its type.
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?[hlL]?([a-zA-Z%])")
_SPEC_NUMBERS = re.compile(r"(\d+)?(?:\.(\d+))?[a-zA-Z%]?$")
_FORMATTER = string.Formatter()

# String methods a template may call. The others pad or expand (center, ljust, zfill,
# expandtabs...) to sizes the template chooses, or encode to bytes nobody prints.
_SAFE_STRING_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
        "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "lower", "lstrip",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
        "escape", "striptags", "unescape",
    }
)  # fmt: skip
# How much larger than the string a method's result can be: a case change turns one character
# into up to three ("ß" -> "SS", "ΐ" -> "Ϊ́"), escaping one into five ("&#39;").
_STRING_METHOD_GROWTH: Mapping[str, int] = {
    "upper": 3, "lower": 3, "title": 3, "capitalize": 3, "swapcase": 3, "casefold": 3, "escape": 5,
    "partition": 1, "rpartition": 1,
}  # fmt: skip
# Methods that cut a string into a list: every piece is an object of its own (about 56 bytes
# before its characters) in a slot of the list (8 bytes).
_SPLITTING_METHODS = frozenset({"split", "rsplit", "splitlines"})
_PIECE_BYTES = 64
# Filters and globals no message needs, which serialise or generate text in amounts their
# arguments choose (tojson's indent, lipsum's paragraphs, urlize's attributes per link).
_REMOVED_FILTERS = ("tojson", "pprint", "urlize")
_REMOVED_GLOBALS = ("lipsum",)
# Filters that do not turn their value into text (the others print it first: `{{ items|upper }}`
# is the upper-cased repr of a list, and a list's repr can be ten times its characters).
_NON_PRINTING_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby", "int",
        "items", "join", "last", "length", "list", "map", "max", "min", "random", "reject", "rejectattr",
        "reverse", "round", "select", "selectattr", "slice", "sort", "sum", "unique", "format",
    }
)  # fmt: skip
# Filters that make a list of what they are given: a string becomes one object per character.
_LISTING_FILTERS = frozenset(
    {"batch", "dictsort", "groupby", "items", "list", "map", "reject", "rejectattr", "select", "selectattr",
     "slice", "sort", "sum", "unique"}
)  # fmt: skip
# Filters whose result is a number, or one of the items they are given: nothing new to hold.
_NON_BUILDING_FILTERS = frozenset(
    {"abs", "attr", "count", "d", "default", "first", "float", "int", "last", "length", "max", "min", "random",
     "round", "wordcount"}
)  # fmt: skip
# How much larger than its text a filter's result can be: escaping (`&#34;`), percent-encoding
# UTF-8 (`%F0%9F%98%80` for one character).
_FILTER_GROWTH: Mapping[str, int] = {
    "e": 5, "escape": 5, "forceescape": 5, "xmlattr": 5, "urlencode": 12, "upper": 3, "lower": 3,
    "title": 3, "capitalize": 3,
}  # fmt: skip


class TemplateBudgetExceeded(SecurityError):
    """A template asked for more work or memory than one render may take."""


@dataclass
class _RenderBudget:
    """What one render has spent: work, text written, memory of the values it built, time."""

    clock: Callable[[], float] = time.monotonic
    max_steps: int = MAX_RENDER_STEPS
    max_seconds: float = MAX_RENDER_SECONDS
    deadline: float = field(init=False)
    steps: int = 0
    produced: int = 0
    built: int = 0

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.max_seconds

    def step(self, read_bytes: int = 0) -> None:
        """One unit of work, and one more for every WORK_UNIT_BYTES the operation reads."""
        self.steps += 1 + read_bytes // WORK_UNIT_BYTES
        if self.steps > self.max_steps:
            raise TemplateBudgetExceeded(
                f"the template does too much work (more than {self.max_steps:,} units: loop iterations, calls, "
                "filters and operators, and the text they read)"
            )
        if self.clock() > self.deadline:
            raise TemplateBudgetExceeded(f"the template takes longer than {self.max_seconds:g} seconds to render")

    def produce(self, chars: int) -> None:
        self.produced += chars
        if self.produced > MAX_PRODUCED_CHARS:
            raise TemplateBudgetExceeded(f"the template writes more than {MAX_PRODUCED_CHARS:,} characters")

    def afford(self, size: int, what: str) -> None:
        """Refuse, before it is built, a value of `size` bytes that the budget has no room for."""
        if self.built + size > MAX_RENDER_BYTES:
            raise TemplateBudgetExceeded(
                f"the template builds more than {MAX_RENDER_BYTES // MiB} MiB of values ({what} would pass it)"
            )

    def build(self, size: int, what: str) -> None:
        self.afford(size, what)
        self.built += size


_ACTIVE_BUDGET: ContextVar[_RenderBudget | None] = ContextVar("fluister_render_budget", default=None)


def _budget() -> _RenderBudget:
    """The budget of the render in progress; outside a render (Jinja folding constants while
    it compiles) a fresh one, so that the checks still apply to each operation."""
    return _ACTIVE_BUDGET.get() or _RenderBudget()


# -- measuring values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Size:
    chars: int  # at most what str() of it prints (a container prints its items' repr)
    bytes: int  # at most the memory it takes (an item in it twice is counted twice)


_END = object()


def _measure(value: Any, what: str, char_limit: int = MAX_VALUE_CHARS) -> _Size:
    """How large a value is, found by walking it without building anything; refused as soon as
    it passes `char_limit` characters or MAX_RENDER_BYTES, or nests deeper than MAX_NESTING.
    Stopping there also bounds the walk: a list of the same list a thousand times is not
    walked a thousand times. The walk is work: a unit for every WORK_UNIT_ITEMS items."""
    chars = size = items = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    budget = _budget()
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        items += 1
        if items % WORK_UNIT_ITEMS == 0:
            budget.step()
        nested = len(stack) > 1
        children: Iterable[Any] | None = None
        count = 0
        if isinstance(item, str):
            chars += _repr_chars(item) if nested else len(item)
            size += sys.getsizeof(item)
        elif item is None or isinstance(item, bool):
            chars += 5
        elif isinstance(item, int):
            chars += item.bit_length() // 2 + 2  # its digits, with room for thousands separators
            size += sys.getsizeof(item)
        elif isinstance(item, float):
            chars += 32
            size += 24
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView)):
            children, count = item, len(item)
        elif isinstance(item, (dict, ItemsView)):
            children, count = chain.from_iterable(item.items() if isinstance(item, dict) else item), 2 * len(item)
        elif isinstance(item, Namespace):
            attributes = object.__getattribute__(item, "_Namespace__attrs")
            children, count = chain.from_iterable(attributes.items()), 2 * len(attributes)
            chars += 12
        elif isinstance(item, Macro):
            chars += 16 + len(item.name)
            size += 256
        else:  # ranges, loops, cyclers, generators...: a short description when printed
            chars += 100
            size += 256
        if children is not None:
            if len(stack) > MAX_NESTING:
                raise TemplateBudgetExceeded(f"{what}: values may nest at most {MAX_NESTING} levels deep")
            chars += 2 + 2 * count  # brackets, and a separator after each item
            size += sys.getsizeof(item)
            stack.append(iter(children))
        if chars > char_limit:
            raise TemplateBudgetExceeded(f"{what} would be more than {char_limit:,} characters")
        if size > MAX_RENDER_BYTES:
            raise TemplateBudgetExceeded(f"{what} would be more than {MAX_RENDER_BYTES // MiB} MiB")
    return _Size(chars, size)


def _repr_chars(text: str) -> int:
    """At most how long repr(text) is: quotes, and an escape for a backslash or a quote; up to
    ten characters (`\\U000e0001`) for each one that is not printable."""
    if text.isprintable():
        return len(text) + text.count("\\") + text.count("'") + 2
    return 10 * len(text) + 2


def _built(value: Any, what: str) -> Any:
    """Count a value an operation has just built against the render's memory, and refuse it if
    it prints more than one value may."""
    budget = _budget()
    if isinstance(value, str):  # the common case, measured without a walk
        if len(value) > MAX_VALUE_CHARS:
            raise TemplateBudgetExceeded(f"{what} would be more than {MAX_VALUE_CHARS:,} characters")
        budget.build(sys.getsizeof(value), what)
    else:
        budget.build(_measure(value, what).bytes, what)
    return value


def _text_bytes(chars: int) -> int:
    """The memory a string of this many characters may take: 4 bytes for a character beyond
    the Basic Multilingual Plane."""
    return 4 * chars + 80


def _refuse_heavier_than(limit: int, chars: int, what: str) -> None:
    if chars > limit:
        raise TemplateBudgetExceeded(f"{what} would be more than {limit:,} characters")


def _check_numbers(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER_ARGUMENT:
            raise TemplateBudgetExceeded(
                f"numbers passed to functions and filters are limited to {MAX_NUMBER_ARGUMENT:,} (got {value:,})"
            )


def _check_format_string(template: Any) -> None:
    if isinstance(template, str) and (_WIDE_PERCENT_FORMAT.search(template) or _WIDE_BRACE_FORMAT.search(template)):
        raise TemplateBudgetExceeded("format widths are limited to 4 digits and cannot come from the arguments")


def _largest_argument(values: Iterable[Any], conversion_repr: bool) -> int:
    largest = 0
    for value in values:
        chars = _measure(value, "a value to format").chars
        if conversion_repr and isinstance(value, str):
            chars = _repr_chars(value)
        largest = max(largest, chars)
    return largest


def _formatted_chars(template: str, fields: Iterable[tuple[int, int, bool]], values: list[Any], escape: bool) -> int:
    """At most how long a format string makes with these values: its own text, and for each
    field its width and precision and the longest value (escaped, for a Markup string). Counted
    before anything is formatted; refused as soon as it passes MAX_VALUE_CHARS."""
    plain = _largest_argument(values, conversion_repr=False)
    as_repr: int | None = None
    total = len(template)
    for width, precision, wants_repr in fields:
        value = plain
        if wants_repr:
            if as_repr is None:
                as_repr = _largest_argument(values, conversion_repr=True)
            value = as_repr
        total += width + precision + value * (5 if escape else 1)
        _refuse_heavier_than(MAX_VALUE_CHARS, total, "the formatted text")
    return total


def _brace_fields(template: str) -> Iterator[tuple[int, int, bool]]:
    for _, name, spec, conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        numbers = _SPEC_NUMBERS.search(spec or "")
        width, precision = (int(n or 0) for n in numbers.groups()) if numbers else (0, 0)
        yield width, precision, conversion in ("r", "a")


def _percent_fields(template: str) -> Iterator[tuple[int, int, bool]]:
    for match in _PERCENT_FIELD.finditer(template):
        width, precision, kind = match.groups()
        if kind != "%":
            yield int(width or 0), int(precision or 0), kind in "ra"


def _percent_values(values: Any) -> list[Any]:
    if isinstance(values, tuple):
        return list(values)
    if isinstance(values, Mapping):
        return list(values.values())
    return [values]


def _check_brace_format(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], is_map: bool) -> int:
    values = list(args[0].values()) if is_map and args and isinstance(args[0], Mapping) else [*args, *kwargs.values()]
    try:
        return _formatted_chars(template, _brace_fields(template), values, isinstance(template, markupsafe.Markup))
    except ValueError:  # a malformed format string: str.format says what is wrong with it
        return len(template)


def _check_percent_format(template: str, values: Any) -> int:
    escape = isinstance(template, markupsafe.Markup)
    return _formatted_chars(template, _percent_fields(template), _percent_values(values), escape)


def _budgeted_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateBudgetExceeded(f"range() is limited to {MAX_RANGE:,} numbers (asked for {len(numbers):,})")
    return numbers


def _replaced_chars(value: Any, old: Any = None, new: Any = None, count: Any = None, *_: Any, **__: Any) -> int:
    if not (isinstance(value, str) and isinstance(old, str) and isinstance(new, str)):
        return len(value) if isinstance(value, str) else 0
    occurrences = len(value) + 1 if old == "" else value.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    chars = len(value) + occurrences * (len(new) - len(old))
    _refuse_heavier_than(MAX_VALUE_CHARS, chars, "the replaced text")
    return chars


def _indented_chars(value: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    if not isinstance(value, str):
        return 0
    prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    chars = len(value) + (value.count("\n") + 1) * prefix
    _refuse_heavier_than(MAX_VALUE_CHARS, chars, "the indented text")
    return chars


def _wrapped_chars(
    value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any, **__: Any
) -> int:
    if not isinstance(value, str):
        return 0
    glue = len(wrapstring) if isinstance(wrapstring, str) else 1
    lines = len(value) // max(width if isinstance(width, int) else 1, 1) + value.count("\n") + 1
    chars = len(value) + lines * glue
    _refuse_heavier_than(MAX_VALUE_CHARS, chars, "the wrapped text")
    return chars


def _joined_chars(value: Any, separator: Any = "", *_: Any, **__: Any) -> int:
    if not isinstance(value, (list, tuple)):
        return 0
    glue = len(separator) if isinstance(separator, str) else 0
    chars = sum(_measure(item, "the joined text").chars for item in value) + glue * len(value)
    _refuse_heavier_than(MAX_VALUE_CHARS, chars, "the joined text")
    return chars


def _centered_chars(value: Any, width: Any = 80, *_: Any, **__: Any) -> int:
    return max(len(value) if isinstance(value, str) else 0, width if isinstance(width, int) else 0)


# How many characters a filter's result can have, from its arguments, before it is called.
_FILTER_ESTIMATES: Mapping[str, Callable[..., int]] = {
    "replace": _replaced_chars,
    "indent": _indented_chars,
    "wordwrap": _wrapped_chars,
    "join": _joined_chars,
    "center": _centered_chars,
    "format": lambda value, *args, **kwargs: (
        _check_percent_format(value, kwargs or args) if isinstance(value, str) else 0
    ),
}


def _filter_estimate(name: str, value: Any, size: _Size, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At most how many bytes the filter's result takes, from what it is given."""
    if name in _NON_BUILDING_FILTERS:
        return 0
    if name in _FILTER_ESTIMATES:
        return _text_bytes(_FILTER_ESTIMATES[name](value, *args, **kwargs))
    if name in _LISTING_FILTERS:
        pieces = len(value) if isinstance(value, str) else 0
        return size.bytes + pieces * _PIECE_BYTES
    if name in _FILTER_GROWTH:
        chars = _FILTER_GROWTH[name] * size.chars
        _refuse_heavier_than(MAX_VALUE_CHARS * _FILTER_GROWTH[name], chars, f"the result of the {name} filter")
        return _text_bytes(chars)
    return size.bytes if isinstance(value, str) else _text_bytes(size.chars)


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, counted as work, with its arguments and result kept within the budget: what
    it will build is estimated before it is called, what it built is counted after.
    (`format` takes any numbers: its danger is in the format string, checked instead.)"""
    # Filters marked @pass_environment, @pass_eval_context or @pass_context get that first.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    prints = name not in _NON_PRINTING_FILTERS

    @wraps(function)  # keeps Jinja's pass_context/pass_eval_context marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if len(args) <= skip:
            budget.step()
            return function(*args, **kwargs)
        if name != "format":
            _check_numbers(args[skip + 1 :], kwargs)
        if name == "sum":
            _check_sum_start(args[skip + 1 :], kwargs)
        value = args[skip]
        if isinstance(value, Iterator):
            # A generator (map, select...): each item it yields is work; join needs them all.
            value = list(_budgeted_items(value)) if name == "join" else _budgeted_items(value)
            args = (*args[:skip], value, *args[skip + 1 :])
        elif name == "format" and isinstance(value, str):
            _check_format_string(value)
        size = _measure(value, f"the value of the {name} filter", MAX_VALUE_CHARS if prints else sys.maxsize)
        budget.step(size.bytes)
        budget.afford(_filter_estimate(name, value, size, args[skip + 1 :], kwargs), f"the result of the {name} filter")
        return _built(function(*args, **kwargs), f"the result of the {name} filter")

    return guarded


def _check_sum_start(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`sum` adds numbers. From a list (`sum(start=[])`) it would concatenate, copying the
    growing list once per item: quadratic work in one call that no step sees. With a number
    to start from, the first list or string it meets is a TypeError at once."""
    start = kwargs.get("start", args[1] if len(args) > 1 else 0)  # sum(iterable, attribute, start)
    if not isinstance(start, int | float):
        raise TemplateBudgetExceeded("sum adds up numbers only; use join for text")


def _budgeted_items(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _string_method_estimate(owner: str, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At most how many bytes a string method's result takes, before it is called."""
    own = sys.getsizeof(owner)
    if method == "replace":
        return _text_bytes(_replaced_chars(owner, *args, **kwargs))
    if method == "join":
        return _text_bytes(_joined_chars(args[0] if args else (), owner))
    if method in _SPLITTING_METHODS:
        separator = args[0] if args and isinstance(args[0], str) else kwargs.get("sep")
        if isinstance(separator, str):
            pieces = owner.count(separator) + 1 if separator else 1  # "" is refused by split itself
        else:  # whitespace or line breaks: at most one piece for every other character
            pieces = len(owner) // 2 + 1 if method != "splitlines" else len(owner) + 1
        return own + pieces * _PIECE_BYTES
    return own * _STRING_METHOD_GROWTH.get(method, 1)


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with hooks into the render budget: every for loop iterates
    through `environment.budgeted_items`, everything written passes through
    `environment.produced` (and a value that is not text through `environment.printable`
    before it is turned into text), and the parts of a `~` are measured before they are
    joined."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Rewritten before Jinja analyses the names in the tree, which the wrapper adds none to.
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("budgeted_items"), [loop.iter], [], None, None, lineno=loop.lineno
            )
        super().visit_Template(node, frame)

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.produced({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.produced(")
        super()._output_child_pre(node, frame, finalize)
        self.write("environment.printable(")

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write(")")
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        # Jinja writes a slice (`text[1:]`) as Python's, past environment.getitem: a slice is a
        # copy, so it goes through getitem here, to be counted.
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for position, part in enumerate((node.arg.start, node.arg.stop, node.arg.step)):
            self.write(", " if position else "")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write("))")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        # CodeGenerator.visit_Compare, with each operand passed through environment.compared:
        # comparing long strings (`==`, `in`) reads them, which is work.
        self.write("(environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.write(f" {COMPARE_OPERATORS[operand.op]} environment.compared(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # CodeGenerator.visit_Concat, with the parts passed through environment.measured first.
        if frame.eval_ctx.volatile:
            function = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            function = "markup_join"
        else:
            function = "str_join"
        self.write(f"{function}(environment.measured((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write(")))")


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the render budget (see the module's docstring)."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%", "-", "/", "//"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _budgeted_range
        for name in _REMOVED_GLOBALS:
            self.globals.pop(name, None)
        for name in _REMOVED_FILTERS:
            self.filters.pop(name, None)
        self.filters = {name: _guarded_filter(name, function) for name, function in self.filters.items()}

    # Called by the generated code (see _BudgetedCodeGenerator).
    @staticmethod
    def budgeted_items(iterable: Any) -> Iterator[Any]:
        return _budgeted_items(iterable)

    @staticmethod
    def produced(text: str) -> str:
        # Written text is held too, until the output (or a {% set %} block, or a macro's
        # result) is joined: it counts against the memory as well as against what may be written.
        budget = _budget()
        budget.produce(len(text))
        budget.build(sys.getsizeof(text), "the text written")
        return text

    @staticmethod
    def printable(value: Any) -> Any:
        if not isinstance(value, str):  # a number, a list...: measured before str() prints it
            size = _measure(value, "what the template prints")
            _budget().build(_text_bytes(size.chars), "what the template prints")
        return value

    @staticmethod
    def compared(value: Any) -> Any:
        if isinstance(value, str):
            _budget().step(sys.getsizeof(value))
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            _budget().step(8 * len(value))
        return value

    @staticmethod
    def measured(parts: tuple[Any, ...]) -> tuple[Any, ...]:
        chars = 0
        for part in parts:
            chars += len(part) if isinstance(part, str) else _measure(part, "the joined text (~)").chars
            _refuse_heavier_than(MAX_VALUE_CHARS, chars, "the joined text (~)")
        budget = _budget()
        budget.step(_text_bytes(chars))
        budget.build(_text_bytes(chars), "the joined text (~)")
        return parts

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _SAFE_STRING_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        _check_numbers(args, kwargs)
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(obj, "__name__", "")
            budget.step(sys.getsizeof(owner))
            if method == "join" and args and not isinstance(args[0], (list, tuple)):
                args = (list(_budgeted_items(args[0])), *args[1:])
            budget.afford(_string_method_estimate(owner, method, args, kwargs), f"what {method}() returns")
        else:
            budget.step()
        return _built(super().call(context, obj, *args, **kwargs), "what the call returns")

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, slice) and isinstance(obj, (str, list, tuple)):
            # A slice is a copy: at most as large as what it is cut from.
            budget = _budget()
            size = sys.getsizeof(obj) if isinstance(obj, str) else _measure(obj, "the slice").bytes
            budget.step(size)
            budget.afford(size, "the slice")
            return _built(super().getitem(obj, argument), "the slice")
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__
        _check_format_string(template)
        is_map = value.__name__ == "format_map"

        @wraps(wrapped)
        def budgeted(*args: Any, **kwargs: Any) -> str:
            budget = _budget()
            budget.step(sys.getsizeof(template))
            budget.afford(_text_bytes(_check_brace_format(template, args, kwargs, is_map)), "the formatted text")
            return _built(wrapped(*args, **kwargs), "the formatted text")

        return budgeted

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        what = f"the result of {operator}"
        if operator == "*":
            budget.afford(_check_repeat(left, right), "the repetition (*)")
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            left_size, right_size = _measure(left, "the sum (+)"), _measure(right, "the sum (+)")
            _refuse_heavier_than(MAX_VALUE_CHARS, left_size.chars + right_size.chars, "the sum (+)")
            budget.step(left_size.bytes + right_size.bytes)
            budget.afford(left_size.bytes + right_size.bytes, "the sum (+)")
        elif operator == "%" and isinstance(left, str):
            _check_format_string(left)
            budget.afford(_text_bytes(_check_percent_format(left, right)), "the formatted text")
            what = "the formatted text"
        return _built(super().call_binop(context, operator, left, right), what)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_repeat(left: Any, right: Any) -> int:
    """Refuses a repetition larger than a value may be; returns the bytes it will take."""
    if _is_integer(left) and _is_integer(right):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise TemplateBudgetExceeded("the product is too large a number")
        return 0
    sequence, times = (left, right) if _is_integer(right) else (right, left)
    if not (_is_integer(times) and isinstance(sequence, (str, list, tuple))):
        return 0
    times = max(times, 0)
    size = _measure(sequence, "the repetition (*)")
    _refuse_heavier_than(MAX_VALUE_CHARS, max(size.chars, 1) * times, "the repetition (*)")
    if isinstance(sequence, str):
        return _text_bytes(len(sequence) * times)
    # A repeated list holds the same items many times: what it prints, and its slots.
    return size.bytes * times + 8 * len(sequence) * times


def _check_power(base: Any, exponent: Any) -> None:
    if _is_integer(base) and _is_integer(exponent) and abs(base) > 1 and exponent > 0:
        if base.bit_length() * exponent > MAX_INTEGER_BITS:
            raise TemplateBudgetExceeded("the power is too large a number")


def _is_landing(name: str) -> bool:
    """`landing.html`, or one of its languages' files (`landing.nl.html`)."""
    return name == TemplateName.LANDING or (name.startswith("landing.") and name.endswith(".html"))


class Translations(Protocol):
    """A locale's catalogue, as gettext and Babel load them."""

    def gettext(self, message: str) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int) -> str: ...


# The language the templates are written in, and what a context without a language reads.
SOURCE_LOCALE = "en"
# Names a message's context gives its translations under (what {% trans %} and _() call).
TRANSLATION_NAMES = ("gettext", "ngettext")


def translation_values(translations: Translations) -> dict[str, Any]:
    """`gettext` and `ngettext` of one locale, for a template's context: new-style (named
    variables, `num` for the count), escaped in HTML, formatted within the render budget."""

    @pass_context
    def gettext(context: Context, message: str, /, **variables: Any) -> str:
        return _formatted_translation(context, translations.gettext(message), variables)

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, /, **variables: Any) -> str:
        variables.setdefault("num", num)
        return _formatted_translation(context, translations.ngettext(singular, plural, num), variables)

    return {"gettext": gettext, "ngettext": ngettext}


def _formatted_translation(context: Context, text: str, variables: Mapping[str, Any]) -> str:
    if not isinstance(text, str):
        raise TypeError("a message to translate must be text")
    _check_format_string(text)
    if context.eval_ctx.autoescape:
        # As Jinja's own new-style gettext: the message is the template's markup (a catalogue's
        # translation of it), its variables are escaped as they are formatted in.
        text = markupsafe.Markup(text)  # noqa: S704
    budget = _budget()
    budget.step(sys.getsizeof(text))
    budget.afford(_text_bytes(_check_percent_format(text, variables)), "the translated text")
    formatted: str = _built(text % variables, "the translated text")  # Markup in HTML: already escaped
    return formatted


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@cache
def default_templates() -> Mapping[str, str]:
    """The templates a campaign starts with, from `templates/campaign/` (read once per process)."""
    return MappingProxyType({name.value: (DEFAULT_TEMPLATE_DIR / name.value).read_text() for name in TemplateName})


@dataclass(frozen=True)
class EmailBatchTemplate:
    """An email rendered once, with placeholders for each recipient's own values.

    `slots` are (variable, raw placeholder, escaped placeholder): the raw one stands where
    the value was printed as text, the escaped one where HTML autoescaping printed it.
    """

    subject: str
    html: str
    text: str
    slots: tuple[tuple[str, str, str], ...]

    def substitutions(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Placeholder -> this recipient's value, as the provider substitutes it in html and text."""
        result: dict[str, str] = {}
        for name, raw, escaped in self.slots:
            value = "" if values[name] is None else str(values[name])
            result[raw] = value
            result[escaped] = str(markupsafe.escape(value))
        return result

    def subject_for(self, values: Mapping[str, Any], *, cut: bool = True) -> str:
        subject = _collapse(_substitute(self.subject, self.substitutions(values)))
        return subject[:MAX_SUBJECT_CHARS] if cut else subject

    def render_for(self, values: Mapping[str, Any], *, cut_subject: bool = True) -> RenderedEmail:
        """What the provider will make of it for this recipient (tests and the proof use it)."""
        subs = self.substitutions(values)
        return RenderedEmail(
            self.subject_for(values, cut=cut_subject), _substitute(self.html, subs), _substitute(self.text, subs)
        )


def _slot_keys(slots: Mapping[str, _Slot]) -> tuple[tuple[str, str, str], ...]:
    return tuple((slot.name, slot.raw, slot.escaped) for slot in slots.values())


def _substitute(text: str, substitutions: Mapping[str, str]) -> str:
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _SlotMisuse(Exception):
    pass


class _Slot:
    """Stands in for a per-recipient value while a batch template renders.

    Printing it yields a placeholder (escaped or raw), testing it yields the truthiness
    of the recipients' values; anything else (filters that read it, comparisons,
    lookups, length) marks it misused, and the batch is rendered per recipient instead.
    """

    def __init__(self, name: str, truthy: bool, nonce: str) -> None:
        self.name = name
        self.truthy = truthy
        self.raw = f"%%fl{nonce}r{name}%%"
        self.escaped = f"%%fl{nonce}e{name}%%"
        self.raw_uses = 0
        self.escaped_uses = 0
        self.misused = False

    def __str__(self) -> str:
        self.raw_uses += 1
        return self.raw

    def __html__(self) -> str:
        self.escaped_uses += 1
        return self.escaped

    def __bool__(self) -> bool:
        return self.truthy

    def _misuse(self, *args: Any, **kwargs: Any) -> Any:
        self.misused = True
        raise _SlotMisuse(self.name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._misuse()

    __getitem__ = __len__ = __iter__ = __contains__ = _misuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _misuse
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __format__ = _misuse
    __hash__ = object.__hash__


class TemplateRenderer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # The clock the time budget is measured on (tests give one of their own).
        self._clock = clock
        common: dict[str, Any] = {
            "undefined": StrictUndefined,
            "keep_trailing_newline": False,
            # {% trans %} and _(): gettext and ngettext come from each message's own context.
            "extensions": ["jinja2.ext.i18n"],
        }
        self._html = _BudgetedSandbox(autoescape=True, **common)
        self._text = _BudgetedSandbox(autoescape=False, **common)
        for environment in (self._html, self._text):
            # New-style: the translated text is formatted with named variables (escaped in HTML).
            environment.newstyle_gettext = True  # type: ignore[attr-defined]
            # A context without a language (a page, a test) reads the source text, English; a
            # message's own context (engine.services.composer) overrides these.
            environment.globals.update(translation_values(gettext.NullTranslations()), locale=SOURCE_LOCALE)
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)
        # Remote stylesheets are never fetched: rendering must not touch the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
        # Placeholders carry a random part, so that nobody can type one into a note.
        self._nonce = secrets.token_hex(6)
        self._pages: OrderedDict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, bool]] = OrderedDict()
        self._pages_lock = threading.Lock()

    def environment(self, name: str) -> Environment:
        """The sandbox a template of this name renders in (HTML ones autoescape): for checks
        that parse a template the way rendering will."""
        return self._html if name.endswith(".html") else self._text

    def parse(self, name: str, source: str) -> nodes.Template:
        """The template's syntax tree, as rendering parses it; TemplateSyntaxError when the
        source is not Jinja, or nests too deeply for Jinja and Python to compile."""
        return _parse(self.environment(name), source)

    def render(self, name: str, source: str, context: Mapping[str, Any]) -> str:
        """The template's output: streamed, so that a template writing past MAX_OUTPUT_CHARS is
        stopped there rather than when it is done."""
        template = self._compile(name.endswith(".html"), source)
        if _is_landing(name):  # on every anonymous view: checked at upload the same way
            limits = _RenderBudget(self._clock, MAX_LANDING_STEPS, MAX_LANDING_SECONDS)
        else:
            limits = _RenderBudget(self._clock)
        budget = _ACTIVE_BUDGET.set(limits)
        chunks: list[str] = []
        written = 0
        stream = template.generate(context)
        try:
            for chunk in stream:
                written += len(chunk)
                if written > MAX_OUTPUT_CHARS:
                    break
                chunks.append(chunk)
        except TemplateError as error:
            raise RenderError(f"{name}: {error}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            raise RenderError(f"{name}: {type(error).__name__}: {error}") from None
        except RecursionError:
            raise RenderError(f"{name}: RecursionError: macros or loops nest too deeply (endless recursion?)") from None
        except MemoryError:
            raise RenderError(f"{name}: MemoryError: the template needs too much memory") from None
        finally:
            # Jinja types generate() as an Iterator; it returns a generator, which has close().
            stream.close()  # type: ignore[attr-defined]
            _ACTIVE_BUDGET.reset(budget)
        if written > MAX_OUTPUT_CHARS:
            raise RenderError(f"{name}: output larger than {MAX_OUTPUT_CHARS:,} characters")
        return "".join(chunks)

    def render_page(self, name: str, source: str, context: Mapping[str, Any]) -> str:
        """`render`, for a page that depends on nothing but its source and these values (the
        landing page: its campaign's, the same for every visitor). The result, or the
        RenderError, is kept for the next view, so that a version is paid for once per process,
        not on every anonymous view; another version or other values render afresh."""
        # Functions (a language's gettext and ngettext) are new objects on every call: the
        # key is the plain values, among them those that name the language (and hashable ones such
        # as a quiz's step, engine.services.wrappers.QuizStep: a few pages per quiz).
        key = (name, source, tuple(sorted((k, v) for k, v in context.items() if not callable(v))))
        with self._pages_lock:
            kept = self._pages.get(key)
            if kept is not None:
                self._pages.move_to_end(key)
        if kept is None:
            try:
                kept = (self.render(name, source, context), True)
            except RenderError as error:
                kept = (str(error), False)
            if len(kept[0]) <= PAGE_CACHE_CHARS:
                with self._pages_lock:
                    self._pages[key] = kept
                    while len(self._pages) > PAGE_CACHE_ENTRIES:
                        self._pages.popitem(last=False)
        text, rendered = kept
        if not rendered:
            raise RenderError(text)
        return text

    def render_email(self, sources: Mapping[str, str], context: Mapping[str, Any]) -> RenderedEmail:
        """Subject, HTML with its CSS inlined (mail clients drop <style>), and a text part: the
        text template's, or derived from the HTML when there is none."""
        parts = self._email_parts(sources, context)
        return RenderedEmail(parts.subject[:MAX_SUBJECT_CHARS], self._inline(parts.html), parts.text)

    def _email_parts(self, sources: Mapping[str, str], context: Mapping[str, Any]) -> RenderedEmail:
        """The three parts before CSS inlining, the subject not yet cut to length."""
        subject = _collapse(self.render(TemplateName.SUBJECT, sources[TemplateName.SUBJECT], context))
        if not subject:
            raise RenderError("subject.txt: renders to an empty subject")
        html = self.render(TemplateName.EMAIL_HTML, sources[TemplateName.EMAIL_HTML], context)
        if TemplateName.EMAIL_TEXT in sources:
            text = self.render(TemplateName.EMAIL_TEXT, sources[TemplateName.EMAIL_TEXT], context)
        else:
            text = get_text(html, _TEXT_FROM_HTML)
        return RenderedEmail(subject, html, text.strip() + "\n")

    def _inline(self, html: str) -> str:
        try:
            return self._inliner.inline(html)
        except ValueError as error:  # css_inline's InlineError: broken CSS the inliner cannot parse
            raise RenderError(f"email.html: cannot inline its CSS: {error}") from None

    def render_sms(
        self, sources: Mapping[str, str], context: Mapping[str, Any], *, segment_limit: int, smart: bool = True
    ) -> str:
        """One line of text, within the campaign's segment limit (RenderError says why not)."""
        text = " ".join(self.render(TemplateName.SMS, sources[TemplateName.SMS], context).split())
        if smart:
            text = smart_encode(text)
        try:
            check_segments(text, segment_limit)
        except SegmentLimitExceeded as error:
            raise RenderError(f"sms.txt: {error}") from None
        return text

    def email_batch_template(
        self,
        sources: Mapping[str, str],
        shared: Mapping[str, Any],
        per_message: Mapping[str, Any],
    ) -> EmailBatchTemplate | None:
        """Render the email once for many recipients, with placeholders for what differs.

        `per_message` holds one recipient's values: they decide the truthiness of each
        placeholder (so `{% if note %}` takes the branch every recipient in this group
        takes) and are used to check the result. None when the templates do anything
        with a per-recipient value but print it (a filter, a comparison, a lookup):
        then every recipient is rendered on its own.
        """
        if TemplateName.EMAIL_TEXT not in sources:
            return None  # a text part derived from HTML decodes entities: not a substitution
        slots = {name: _Slot(name, bool(value), self._nonce) for name, value in per_message.items()}
        context = {**shared, **slots}
        try:
            subject = self.render(TemplateName.SUBJECT, sources[TemplateName.SUBJECT], context)
            html = self.render(TemplateName.EMAIL_HTML, sources[TemplateName.EMAIL_HTML], context)
            text = self.render(TemplateName.EMAIL_TEXT, sources[TemplateName.EMAIL_TEXT], context)
        except (RenderError, _SlotMisuse):
            return None
        output = subject + html + text
        for slot in slots.values():
            # Every time a value was turned into text, its placeholder must have reached the
            # output untouched; otherwise a filter changed it and substitution would be wrong.
            if (
                slot.misused
                or output.count(slot.raw) != slot.raw_uses
                or output.count(slot.escaped) != slot.escaped_uses
            ):
                return None
        probe = EmailBatchTemplate(subject=subject, html=html, text=text.strip() + "\n", slots=_slot_keys(slots))
        # The proof: this recipient's message, substituted, is what rendering them alone gives
        # (compared before CSS inlining, which re-serialises the HTML it is given).
        try:
            alone = self._email_parts(sources, {**shared, **per_message})
            inlined = self._inline(html)
        except RenderError:
            return None
        if probe.render_for(per_message, cut_subject=False) != alone:
            return None
        return replace(probe, html=inlined)

    def _compile_uncached(self, html: bool, source: str) -> Template:
        environment = self._html if html else self._text
        try:
            try:
                return environment.from_string(_parse(environment, source))
            except (SyntaxError, RecursionError):  # Python's own limits ("too many statically nested blocks")
                raise TemplateSyntaxError(_too_deep(), lineno=1) from None
        except TemplateError as error:
            line = getattr(error, "lineno", None)
            where = f" (line {line})" if line else ""
            raise RenderError(f"template syntax error{where}: {error}") from None


def _parse(environment: Environment, source: str) -> nodes.Template:
    try:
        tree = environment.parse(source)
    except RecursionError:  # Jinja's parser recurses into brackets and blocks
        raise TemplateSyntaxError(_too_deep(), lineno=1) from None
    _check_depth(tree)
    return tree


def _too_deep() -> str:
    return (
        f"the template nests too deeply (at most {MAX_BLOCK_NESTING} blocks and {MAX_TEMPLATE_DEPTH} "
        "levels of blocks and expressions inside each other)"
    )


_BLOCKS = (nodes.For, nodes.If, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With, nodes.AssignBlock)


def _check_depth(tree: nodes.Template) -> None:
    """Refuse a tree deeper than Jinja's compiler (which recurses) and Python's (at most 20
    nested blocks) can take, walked without recursion."""
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 0)]
    while stack:
        node, depth, blocks = stack.pop()
        if depth > MAX_TEMPLATE_DEPTH or blocks > MAX_BLOCK_NESTING:
            raise TemplateSyntaxError(_too_deep(), lineno=node.lineno or 1)
        blocks += isinstance(node, _BLOCKS)
        stack.extend((child, depth + 1, blocks) for child in node.iter_child_nodes())
