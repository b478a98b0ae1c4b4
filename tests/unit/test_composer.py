"""The composer: one message's context and headers, the same wherever it is built."""

from __future__ import annotations

from engine.channels import CampaignSending, MessageLinks
from engine.contacts import Contact
from engine.policy import BUILT_IN
from engine.services.composer import compose

CAMPAIGN = CampaignSending(
    campaign_id=1,
    policy=BUILT_IN["us"],
    brand_name="Acme",
    sender_email="offers@acme.example",
    sources={},
    context={"brand_name": "Acme", "offer_title": "Ten percent off"},
)
LINKS = MessageLinks(
    "https://fluister.example/f/abc",
    "https://fluister.example/u/def",
    "<https://fluister.example/u/def>, <mailto:unsubscribe@acme.example?subject=unsubscribe%20M1>",
)
VALUES = {"sender_name": "Anna", "note": None, "coupon_code": "SPRING-1"}


def test_a_message_prints_the_campaigns_values_the_senders_and_its_own_links() -> None:
    message = compose(CAMPAIGN, Contact("sms", "+31612345678"), VALUES, LINKS, "M1")

    # Its language's catalogue, which {% trans %} calls: English, the source text, here.
    assert message.context["gettext"]
    assert message.context["ngettext"]
    assert {k: v for k, v in message.context.items() if k not in ("gettext", "ngettext")} == {
        "locale": "en",
        "brand_name": "Acme",
        "offer_title": "Ten percent off",
        "sender_name": "Anna",
        "note": "",
        "link": "https://fluister.example/f/abc",
        "unsubscribe_link": "https://fluister.example/u/def",
        "coupon_code": "SPRING-1",
    }
    assert (message.channel, message.to, message.reference) == ("sms", "+31612345678", "M1")
    # A text carries no headers.
    assert message.headers == {}


def test_an_email_gets_its_message_id_and_one_click_unsubscribe_headers() -> None:
    message = compose(CAMPAIGN, Contact("email", "bob@example.com"), VALUES, LINKS, "M1")

    assert message.headers == {
        "Message-ID": "<M1@acme.example>",
        "List-Unsubscribe": LINKS.list_unsubscribe,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Content-Language": "en",
    }
