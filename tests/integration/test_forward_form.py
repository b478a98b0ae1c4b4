"""The send-to-friend form as people fill it in: adding a friend without JavaScript, several
contacts pasted into one field, each error beside its own field, labels that speak of the
channels the campaign enables."""

from __future__ import annotations

import lxml.html
from flask import Flask

from engine.models import Message
from engine.runtime import Runtime
from tests.helpers import count, counts, forward_form, make_campaign, visible_text


def _doc(html: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(html)


def _friend_inputs(html: str) -> list[lxml.html.HtmlElement]:
    return _doc(html).xpath('//form//input[@name="friend"]')


def _label_of(doc: lxml.html.HtmlElement, element_id: str) -> str:
    labels = doc.xpath(f'//label[@for="{element_id}"]')
    assert len(labels) == 1, f"{element_id} has {len(labels)} labels"
    return " ".join(labels[0].text_content().split())


def _described_by(doc: lxml.html.HtmlElement, element_id: str) -> str:
    (element,) = doc.xpath(f'//*[@id="{element_id}"]')
    return " ".join(
        " ".join(doc.xpath(f'//*[@id="{ref}"]')[0].text_content().split())
        for ref in (element.get("aria-describedby") or "").split()
    )


def test_add_a_friend_without_javascript_adds_one_empty_input_keeps_what_was_typed_and_writes_nothing(
    app: Flask, runtime: Runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    assert len(_friend_inputs(page)) == 3
    assert _doc(page).xpath('//button[@name="add_friend"]'), "no add-a-friend button"
    before = counts(runtime.db)
    form = forward_form(page, sender_name="Anna", friends=["bob@example.com", "", "not-valid"], note="Try it")
    form["add_friend"] = "1"
    again = client.post("/c/spring/forward", data=form)
    assert again.status_code == 200
    inputs = _friend_inputs(again.text)
    assert [i.get("value") or "" for i in inputs] == ["bob@example.com", "", "not-valid", ""]
    assert _doc(again.text).xpath('//input[@name="sender_name"]')[0].get("value") == "Anna"
    assert "Try it" in again.text
    # Adding a row is not a submission: no error is shown, nothing is written.
    assert 'aria-invalid="true"' not in again.text
    assert "not a valid" not in again.text
    assert counts(runtime.db) == before
    # Up to the campaign's maximum (5), and then the button is gone.
    form = forward_form(again.text, friends=["a@example.com", "b@example.com", "", "", ""])
    form["add_friend"] = "1"
    full = client.post("/c/spring/forward", data=form)
    assert len(_friend_inputs(full.text)) == 5
    assert not _doc(full.text).xpath('//button[@name="add_friend"]')
    form = forward_form(full.text, friends=["a@example.com", "", "", "", ""])
    form["add_friend"] = "1"
    assert len(_friend_inputs(client.post("/c/spring/forward", data=form).text)) == 5


def test_the_add_a_friend_script_is_a_static_file_not_inline(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    doc = _doc(client.get("/c/spring").text)
    scripts = doc.xpath("//script")
    assert all(s.get("src") for s in scripts), "an inline script"
    (friends_js,) = [s.get("src") for s in scripts if "friends" in s.get("src")]
    served = client.get(friends_js)
    assert served.status_code == 200 and "add_friend" in served.text


def test_several_contacts_pasted_into_one_field_are_split_and_each_sent(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    pasted = "bob@example.com, carol@example.com;dave@example.com\nerin@example.com +1 415 555 0199"
    response = client.post("/c/spring/forward", data=forward_form(page, friends=[pasted]))
    assert response.status_code == 303, visible_text(response.text)
    assert count(runtime.db, Message) == 5


def test_pasted_contacts_count_toward_the_maximum(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    pasted = " ".join(f"friend{n}@example.com" for n in range(6))
    response = client.post("/c/spring/forward", data=forward_form(page, friends=[pasted]))
    assert response.status_code == 422
    assert "at most 5 friends at a time" in visible_text(response.text)
    assert "email_validator" not in response.text and "The email address" not in response.text
    assert _friend_inputs(response.text)[0].get("value") == pasted
    assert count(runtime.db, Message) == 0


def test_a_bad_contact_among_pasted_ones_is_named_beside_its_field(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    response = client.post(
        "/c/spring/forward", data=forward_form(page, friends=["bob@example.com", "carol@example.com, nobody@"])
    )
    assert response.status_code == 422
    doc = _doc(response.text)
    assert "nobody@ is not a valid email address" in _described_by(doc, "friend-2")
    assert "nobody@" not in _described_by(doc, "friend-1")
    assert count(runtime.db, Message) == 0


def test_each_error_sits_beside_its_field_and_the_summary_takes_focus(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    response = client.post(
        "/c/spring/forward",
        data=forward_form(page, sender_name="", friends=["bob@example.com", "", "nobody@"], note="Hi"),
    )
    assert response.status_code == 422
    doc = _doc(response.text)
    # Only the bad inputs are marked, each linked to its own message.
    invalid = sorted(e.get("id") for e in doc.xpath('//*[@aria-invalid="true"]'))
    assert invalid == ["friend-3", "sender_name"]
    assert "nobody@ is not a valid email address" in _described_by(doc, "friend-3")
    assert "not a valid" not in _described_by(doc, "friend-1")
    assert "Enter your name" in _described_by(doc, "sender_name")
    assert "Enter your name" not in _described_by(doc, "friend-3")
    # The valid fields keep their values.
    values = [i.get("value") or "" for i in _friend_inputs(response.text)]
    assert values == ["bob@example.com", "", "nobody@"]
    assert doc.xpath('//textarea[@name="note"]')[0].text_content().strip() == "Hi"
    # A summary at the top of the form, focused, each entry a link to its field.
    (summary,) = doc.xpath('//*[@id="error-summary"]')
    assert summary.get("tabindex") == "-1" and summary.get("autofocus") is not None
    targets = [a.get("href") for a in summary.xpath(".//a")]
    assert targets == ["#sender_name", "#friend-3"]
    assert summary.getparent().tag == "form" or summary.xpath("following::form")
    assert count(runtime.db, Message) == 0


def test_every_friend_input_has_its_own_label(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    doc = _doc(app.test_client().get("/c/spring").text)
    for number in (1, 2, 3):
        assert _label_of(doc, f"friend-{number}") == f"Friend {number}"
    # The first page shows no error summary: nothing to say yet.
    assert not doc.xpath('//*[@id="error-summary"]')


def test_the_labels_speak_of_the_channels_the_campaign_enables(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "mail", channels=["email"])
    make_campaign(runtime.db, "texts", channels=["sms"])
    make_campaign(runtime.db, "both", channels=["email", "sms"])
    client = app.test_client()

    def legend(slug: str) -> str:
        doc = _doc(client.get(f"/c/{slug}").text)
        (text,) = doc.xpath('//fieldset[@class="friends"]/legend')
        return " ".join(text.text_content().split())

    def hint(slug: str) -> str:
        return _described_by(_doc(client.get(f"/c/{slug}").text), "friend-1")

    assert legend("mail") == "Your friends' email addresses"
    assert "email address each" in hint("mail") and "mobile" not in hint("mail")
    assert legend("texts") == "Your friends' phone numbers"
    assert "mobile number each" in hint("texts") and "email" not in hint("texts")
    assert legend("both") == "Your friends' email addresses or phone numbers"
    assert "an email address or a mobile number each" in hint("both")


def test_the_form_in_dutch_labels_channels_and_places_errors(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "mail", channels=["email"], locales=["nl"], phone_region="NL")
    client = app.test_client()
    page = client.get("/c/mail").text
    doc = _doc(page)
    (legend,) = doc.xpath('//fieldset[@class="friends"]/legend')
    assert " ".join(legend.text_content().split()) == "E-mailadressen van je vrienden"
    assert _label_of(doc, "friend-2") == "Vriend 2"
    assert "Vriend toevoegen" in visible_text(page)
    response = client.post(
        "/c/mail/forward", data=forward_form(page, friends=["bob@example.com", "nobody@"], locale="nl")
    )
    assert response.status_code == 422
    doc = _doc(response.text)
    assert "nobody@ is geen geldig e-mailadres" in _described_by(doc, "friend-2")
    assert doc.xpath('//*[@id="error-summary"]')


def test_a_friend_the_offer_refuses_is_named_beside_the_input_it_was_pasted_in(
    app: Flask, runtime: Runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    response = client.post(
        "/c/spring/forward",
        data=forward_form(page, friends=["bob@example.com", "", "carol@example.com, x@mailinator.com"]),
    )
    assert response.status_code == 422
    doc = _doc(response.text)
    assert "disposable mail services" in _described_by(doc, "friend-3")
    assert "disposable" not in _described_by(doc, "friend-1")
    invalid = [e.get("id") for e in doc.xpath('//*[@aria-invalid="true"]')]
    assert invalid == ["friend-3"]
    assert [a.get("href") for a in doc.xpath('//*[@id="error-summary"]//a')] == ["#friend-3"]
    assert count(runtime.db, Message) == 0
