import css_inline
import pytest

from engine.rendering import RenderError, TemplateRenderer, default_templates

CONTEXT = {
    "sender_name": "Anna <script>",
    "note": "See you & soon",
    "campaign_name": "Demo",
    "offer_title": "Free coffee",
    "offer_description": "One coffee on us.",
    "brand_name": "Koffie & Co",
    "postal_address": "Prinsengracht 1, Amsterdam",
    "support_contact": "help@koffie.example",
    "link": "https://fluister.test/f/abc",
    "unsubscribe_link": "https://fluister.test/u/def",
    "coupon_code": "FRIEND-7K3M9Q",
    "logo_url": "",
    "logo_width": "",
    "logo_height": "",
}


def test_default_email_carries_sender_link_unsubscribe_and_address() -> None:
    email = TemplateRenderer().render_email(default_templates(), CONTEXT)
    assert email.subject == "Anna <script> thinks you'll like this: Free coffee"
    for part in (email.html, email.text):
        assert "https://fluister.test/f/abc" in part
        assert "https://fluister.test/u/def" in part
        assert "Prinsengracht 1" in part


def test_html_is_escaped_and_text_is_not() -> None:
    email = TemplateRenderer().render_email(default_templates(), CONTEXT)
    assert "Anna &lt;script&gt;" in email.html
    assert "<script>" not in email.html
    assert "Anna <script> sent you" in email.text


def test_sms_is_one_line() -> None:
    sms = TemplateRenderer().render_sms({"sms.txt": "Hi\n{{ sender_name }}\n\n{{ link }}"}, CONTEXT, segment_limit=1)
    assert sms == "Hi Anna <script> https://fluister.test/f/abc"


def test_subject_cannot_smuggle_header_lines() -> None:
    sources = {**default_templates(), "subject.txt": "Hello\r\nBcc: victim@example.com"}
    assert "\n" not in TemplateRenderer().render_email(sources, CONTEXT).subject


def test_unknown_variable_is_an_error_not_blank_output() -> None:
    with pytest.raises(RenderError, match="frend"):
        TemplateRenderer().render("sms.txt", "Hi {{ frend }}", CONTEXT)


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(RenderError, match="line 2"):
        TemplateRenderer().render("email.html", "ok\n{% if %}", CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ sender_name.__class__ }}",
        "{{ 'a{0.__class__}'.format(sender_name) }}",
        "{{ sender_name|attr('__class__') }}",
    ],
)
def test_sandbox_refuses_python_internals(source: str) -> None:
    with pytest.raises(RenderError):
        TemplateRenderer().render("sms.txt", source, CONTEXT)


def test_huge_output_is_refused() -> None:
    with pytest.raises(RenderError):
        TemplateRenderer().render("sms.txt", "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", CONTEXT)


def test_output_stops_at_its_limit_as_it_is_written() -> None:
    # 700,000 characters, then more work than a render may do: streamed, the render stops at
    # the output's limit and never gets to the work.
    source = "{{ note * 10000 }}" * 5 + "{% for i in range(10000) %}{% for j in range(20) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderError) as refused:
        TemplateRenderer().render("email.txt", source, CONTEXT)
    assert str(refused.value) == "email.txt: output larger than 524,288 characters"


def test_compiled_templates_are_cached() -> None:
    renderer = TemplateRenderer()
    renderer.render("sms.txt", "Hi {{ sender_name }}", CONTEXT)
    renderer.render("sms.txt", "Hi {{ sender_name }}", CONTEXT)
    assert renderer._compile.cache_info().hits == 1


def test_css_is_inlined_and_media_queries_kept() -> None:
    sources = {
        **default_templates(),
        "email.html": "<html><head><style>p { color: red } @media (max-width: 600px) { p { color: blue } }</style>"
        "</head><body><p>{{ sender_name }}</p></body></html>",
    }
    html = TemplateRenderer().render_email(sources, CONTEXT).html
    assert '<p style="color: red;">' in html
    assert "@media (max-width: 600px)" in html


def test_text_part_is_derived_from_the_html_when_there_is_no_text_template() -> None:
    sources = {k: v for k, v in default_templates().items() if k != "email.txt"}
    sources["email.html"] = '<p>Hi from {{ sender_name }}</p><p><a href="{{ link }}">See the offer</a></p>'
    text = TemplateRenderer().render_email(sources, CONTEXT).text
    assert "Hi from Anna <script>" in text
    assert "https://fluister.test/f/abc" in text
    assert "<p>" not in text


def test_sms_smart_encoding_keeps_gsm_7() -> None:
    sources = {"sms.txt": "{{ sender_name }} says \u201cit\u2019s great\u201d \u2014 {{ link }}"}
    context = {**CONTEXT, "sender_name": "Anna"}
    assert TemplateRenderer().render_sms(sources, context, segment_limit=1) == (
        'Anna says "it\'s great" - https://fluister.test/f/abc'
    )
    assert "\u201c" in TemplateRenderer().render_sms(sources, context, segment_limit=1, smart=False)


def test_sms_over_the_segment_limit_is_refused_with_the_reason() -> None:
    sources = {"sms.txt": "{{ note }}"}
    with pytest.raises(RenderError, match="2 segments") as error:
        TemplateRenderer().render_sms(sources, {**CONTEXT, "note": "x" * 200}, segment_limit=1)
    assert "at most 1" in str(error.value)


PER_MESSAGE = ("sender_name", "note", "link", "unsubscribe_link", "coupon_code")


def split(context: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    shared = {k: v for k, v in context.items() if k not in PER_MESSAGE}
    return shared, {k: context[k] for k in PER_MESSAGE}


@pytest.mark.parametrize(
    "recipient",
    [
        {},
        {"sender_name": "Tom & Jerry <3", "note": 'Say "hi" & <b>bye</b>'},
        {"note": ""},
        {"sender_name": "Zoë 🎉", "link": "https://fluister.test/f/x?a=1&b=2"},
        {"coupon_code": ""},
        {"coupon_code": "A&B<C>\"'"},
    ],
)
def test_batch_template_gives_each_recipient_exactly_their_own_email(recipient: dict[str, str]) -> None:
    renderer = TemplateRenderer()
    context = {**CONTEXT, **recipient}
    shared, per_message = split(context)
    template = renderer.email_batch_template(default_templates(), shared, per_message)
    assert template is not None
    assert "Tom" not in template.html and "fluister.test/f/" not in template.text  # only placeholders
    # Any recipient with the same truthiness gets, after substitution, what rendering them alone gives:
    # the same subject and text, and the same HTML once both are parsed and written out again.
    other = {**per_message, "sender_name": 'Bob & "Co" <x>', "link": "https://fluister.test/f/other"}
    batched = template.render_for(other)
    alone = renderer.render_email(default_templates(), {**shared, **other})
    assert (batched.subject, batched.text) == (alone.subject, alone.text)
    assert css_inline.inline(batched.html) == css_inline.inline(alone.html)


@pytest.mark.parametrize(
    "subject",
    [
        "{{ sender_name|upper }} says hi",
        "{{ sender_name|truncate(3) }}",
        "{% if sender_name == 'Anna' %}Hi Anna{% endif %}x",
        "{{ sender_name|length }}",
        "{{ sender_name[0] }}",
        "{% if sender_name.startswith('A') %}A{% endif %}x",
        "{{ sender_name.upper is defined }}",
    ],
)
def test_batch_template_refuses_templates_that_do_more_than_print_a_value(subject: str) -> None:
    sources = {**default_templates(), "subject.txt": subject}
    shared, per_message = split(CONTEXT)
    assert TemplateRenderer().email_batch_template(sources, shared, per_message) is None


def test_batch_template_is_not_used_for_a_text_part_derived_from_html() -> None:
    sources = {k: v for k, v in default_templates().items() if k != "email.txt"}
    shared, per_message = split(CONTEXT)
    assert TemplateRenderer().email_batch_template(sources, shared, per_message) is None


def test_placeholders_cannot_be_guessed_by_a_sender() -> None:
    first, second = TemplateRenderer(), TemplateRenderer()
    shared, per_message = split(CONTEXT)
    a = first.email_batch_template(default_templates(), shared, per_message)
    b = second.email_batch_template(default_templates(), shared, per_message)
    assert a is not None and b is not None
    assert set(a.substitutions(per_message)).isdisjoint(b.substitutions(per_message))
