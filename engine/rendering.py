"""Render campaign templates (uploaded by marketers, so untrusted) in Jinja2's sandbox.

HTML templates are autoescaped, text templates are not; both run in an
ImmutableSandboxedEnvironment with StrictUndefined, so a template can neither
reach Python internals nor silently print nothing for a misspelt variable.
Compiled templates are cached by their source, which makes the send loop pay for
compiling a template version once, not once per message.

The sandbox keeps a template from reaching Python; it does not keep one from working
forever or filling the memory. `_BudgetedSandbox` adds that: every render gets a budget of
steps (loop iterations, calls, filters), of characters produced and of time, and the
operations that multiply sizes (`*`, `**`, `+`, `~`, `%`, format widths, a few filters and
string methods) are checked *before* they allocate. A template over any budget fails with a
RenderError that says which.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache, wraps
from pathlib import Path
from types import MappingProxyType
from typing import Any

import css_inline
import markupsafe
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import Environment, StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from engine.models.campaigns import TemplateName
from engine.sms import SegmentLimitExceeded, check_segments, smart_encode

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "campaign"
MAX_OUTPUT_CHARS = 512 * 1024
MAX_SUBJECT_CHARS = 200
# Links stay visible in a derived text part: "See the offer [https://…]" rather than a bare "See the offer".
_TEXT_FROM_HTML = ParserConfig(display_links=True)


class RenderError(ValueError):
    """A template failed to compile or render; str() says where and why."""


# -- the render budget ------------------------------------------------------------------
# A campaign's templates print a dozen values; these limits are far above what one needs and
# far below what would hold up a worker or fill its memory.
MAX_RENDER_STEPS = 100_000  # loop iterations, function and macro calls, filters: in one render
MAX_PRODUCED_CHARS = 4 * MAX_OUTPUT_CHARS  # all text written, {% set %} blocks and macros included
MAX_RENDER_SECONDS = 2.0
MAX_RANGE = 10_000  # items in one range()
MAX_VALUE_CHARS = MAX_OUTPUT_CHARS  # any one string (or list, by its characters) a template builds
MAX_NUMBER_ARGUMENT = 10_000  # widths, counts, repetitions passed to functions and filters
MAX_INTEGER_BITS = 100_000  # big numbers: 10 ** 30000 is about this

# A format width or precision of 5 digits or more, or one taken from the arguments (`*`).
_WIDE_PERCENT_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{5,}|\d*\.(?:\*|\d{5,}))")
_WIDE_BRACE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\{|\d{5,})")

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
# Filters and globals no message needs, which serialise or generate text in amounts their
# arguments choose (tojson's indent, lipsum's paragraphs, urlize's attributes per link).
_REMOVED_FILTERS = ("tojson", "pprint", "urlize")
_REMOVED_GLOBALS = ("lipsum",)


class TemplateBudgetExceeded(SecurityError):
    """A template asked for more work or memory than one render may take."""


@dataclass
class _RenderBudget:
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_RENDER_SECONDS)
    steps: int = 0
    produced: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_RENDER_STEPS:
            raise TemplateBudgetExceeded(
                f"the template does too much work (more than {MAX_RENDER_STEPS:,} loop iterations, calls and filters)"
            )
        if time.monotonic() > self.deadline:
            raise TemplateBudgetExceeded(f"the template takes longer than {MAX_RENDER_SECONDS:g} seconds to render")

    def produce(self, chars: int) -> None:
        self.produced += chars
        if self.produced > MAX_PRODUCED_CHARS:
            raise TemplateBudgetExceeded(f"the template writes more than {MAX_PRODUCED_CHARS:,} characters")


_ACTIVE_BUDGET: ContextVar[_RenderBudget | None] = ContextVar("fluister_render_budget", default=None)


def _budget() -> _RenderBudget:
    """The budget of the render in progress; outside a render (Jinja folding constants while
    it compiles) a fresh one, so that the checks still apply to each operation."""
    return _ACTIVE_BUDGET.get() or _RenderBudget()


def _weight(value: Any, depth: int = 0) -> int:
    """About how many characters a value makes when printed: strings by length, containers by
    their items (so that a list of a thousand long strings weighs what it would print)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)) and depth < 8:
        return len(value) + sum(_weight(item, depth + 1) for item in value)
    if isinstance(value, dict) and depth < 8:
        return len(value) + sum(_weight(k, depth + 1) + _weight(v, depth + 1) for k, v in value.items())
    return 0


def _refuse_heavier_than(limit: int, weight: int, what: str) -> None:
    if weight > limit:
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


def _budgeted_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateBudgetExceeded(f"range() is limited to {MAX_RANGE:,} numbers (asked for {len(numbers):,})")
    return numbers


def _check_replace(value: Any, old: Any = None, new: Any = None, count: Any = None, *_: Any, **__: Any) -> None:
    if not (isinstance(value, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = value.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    _refuse_heavier_than(MAX_VALUE_CHARS, len(value) + occurrences * (len(new) - len(old)), "the replaced text")


def _check_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    if isinstance(value, str):
        prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _refuse_heavier_than(MAX_VALUE_CHARS, len(value) + (value.count("\n") + 1) * prefix, "the indented text")


def _check_wordwrap(
    value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any, **__: Any
) -> None:
    if isinstance(value, str) and isinstance(wrapstring, str) and isinstance(width, int):
        lines = len(value) // max(width, 1) + value.count("\n") + 1
        _refuse_heavier_than(MAX_VALUE_CHARS, len(value) + lines * len(wrapstring), "the wrapped text")


def _check_join(value: Any, separator: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(value, (list, tuple)):
        glue = len(separator) if isinstance(separator, str) else 0
        _refuse_heavier_than(MAX_VALUE_CHARS, _weight(value) + glue * len(value), "the joined text")


_FILTER_PRECHECKS: Mapping[str, Callable[..., None]] = {
    "replace": _check_replace,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "join": _check_join,
    "format": lambda value, *_, **__: _check_format_string(value),
}


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, counted as a step, with its arguments and result kept within the budget.
    (`format` takes any numbers: its danger is in the format string, checked instead.)"""
    # Filters marked @pass_environment, @pass_eval_context or @pass_context get that first.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    precheck = _FILTER_PRECHECKS.get(name)

    @wraps(function)  # keeps Jinja's pass_context/pass_eval_context marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().step()
        if name != "format":
            _check_numbers(args[skip + 1 :], kwargs)
        if precheck is not None and len(args) > skip:
            # join's value may be a generator: look at a list of it, and join that list.
            if name == "join" and not isinstance(args[skip], (str, list, tuple)):
                args = (*args[:skip], list(args[skip]), *args[skip + 1 :])
            precheck(*args[skip:], **kwargs)
        result = function(*args, **kwargs)
        _refuse_heavier_than(MAX_VALUE_CHARS, _weight(result), f"the result of the {name} filter")
        return result

    return guarded


def _budgeted_items(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with three hooks into the render budget: every for loop
    iterates through `environment.budgeted_items`, everything written passes through
    `environment.produced`, and the parts of a `~` are measured before they are joined."""

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

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
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
    intercepted_binops = frozenset({"*", "**", "+", "%"})

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
        _budget().produce(len(text))
        return text

    @staticmethod
    def measured(parts: tuple[Any, ...]) -> tuple[Any, ...]:
        _refuse_heavier_than(MAX_VALUE_CHARS, sum(_weight(part) for part in parts), "the joined text (~)")
        return parts

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _SAFE_STRING_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _budget().step()
        _check_numbers(args, kwargs)
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(obj, "__name__", "")
            if method == "replace":
                _check_replace(owner, *args, **kwargs)
            elif method == "join" and args:
                items = args[0] if isinstance(args[0], (list, tuple)) else list(args[0])
                _check_join(items, owner)
                args = (items, *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format_string(value.__self__)
        return wrapped

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            _refuse_heavier_than(MAX_VALUE_CHARS, _weight(left) + _weight(right), "the sum (+)")
        elif operator == "%":
            _check_format_string(left)
        return super().call_binop(context, operator, left, right)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_repeat(left: Any, right: Any) -> None:
    if _is_integer(left) and _is_integer(right):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise TemplateBudgetExceeded("the product is too large a number")
        return
    sequence, times = (left, right) if _is_integer(right) else (right, left)
    if _is_integer(times) and isinstance(sequence, (str, list, tuple)):
        _refuse_heavier_than(MAX_VALUE_CHARS, max(_weight(sequence), 1) * max(times, 0), "the repetition (*)")


def _check_power(base: Any, exponent: Any) -> None:
    if _is_integer(base) and _is_integer(exponent) and abs(base) > 1 and exponent > 0:
        if base.bit_length() * exponent > MAX_INTEGER_BITS:
            raise TemplateBudgetExceeded("the power is too large a number")


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
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _misuse  # type: ignore[assignment]
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __format__ = _misuse  # type: ignore[assignment]
    __hash__ = object.__hash__


class TemplateRenderer:
    def __init__(self) -> None:
        common: dict[str, Any] = {"undefined": StrictUndefined, "keep_trailing_newline": False}
        self._html = _BudgetedSandbox(autoescape=True, **common)
        self._text = _BudgetedSandbox(autoescape=False, **common)
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)
        # Remote stylesheets are never fetched: rendering must not touch the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
        # Placeholders carry a random part, so that nobody can type one into a note.
        self._nonce = secrets.token_hex(6)

    def environment(self, name: str) -> Environment:
        """The sandbox a template of this name renders in (HTML ones autoescape): for checks
        that parse a template the way rendering will."""
        return self._html if name.endswith(".html") else self._text

    def render(self, name: str, source: str, context: Mapping[str, Any]) -> str:
        template = self._compile(name.endswith(".html"), source)
        budget = _ACTIVE_BUDGET.set(_RenderBudget())
        try:
            output = template.render(context)
        except TemplateError as error:
            raise RenderError(f"{name}: {error}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            raise RenderError(f"{name}: {type(error).__name__}: {error}") from None
        except RecursionError:
            raise RenderError(f"{name}: RecursionError: macros or loops nest too deeply (endless recursion?)") from None
        except MemoryError:
            raise RenderError(f"{name}: MemoryError: the template needs too much memory") from None
        finally:
            _ACTIVE_BUDGET.reset(budget)
        if len(output) > MAX_OUTPUT_CHARS:
            raise RenderError(f"{name}: output larger than {MAX_OUTPUT_CHARS} characters")
        return output

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
            return environment.from_string(source)
        except TemplateError as error:
            line = getattr(error, "lineno", None)
            where = f" (line {line})" if line else ""
            raise RenderError(f"template syntax error{where}: {error}") from None
