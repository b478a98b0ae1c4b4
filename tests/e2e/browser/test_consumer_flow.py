"""A consumer in a real browser: Anna lands on the demo offer and forwards it to two friends;
Bob opens the tracked link from his email in the outbox, sees that Anna sent it, and forwards it
to Carol: generation 2. No page logs an error, a CSP violation included."""

from __future__ import annotations

from playwright.sync_api import Locator, expect
from sqlalchemy import select

from engine.models import Forward
from engine.tokens import Purpose
from tests.e2e.browser.conftest import Tab
from tests.e2e.live import LiveServer

OFFER = "A free coffee at Koffie & Co"


def test_forward_to_two_friends_then_a_friend_forwards_again(tab: Tab, live: LiveServer) -> None:
    page = tab.page

    # Anna lands on the offer and sends it to two friends.
    tab.open("/c/demo", "landing")
    expect(page.locator("article.offer")).to_contain_text(OFFER)
    forward(tab, "Anna", "bob@example.com", "carla@example.com", note="Coffee on me!")
    expect(page.get_by_role("status")).to_contain_text(f"We're sending your 2 friends the offer “{OFFER}”.")
    tab.shot("thanks")

    # Both emails are in the outbox, each to its friend, from Anna.
    live.wait_for_outbox(2)
    tab.open("/dev/outbox", "outbox-two-emails")
    expect(page.locator("article.message")).to_have_count(2)
    to_bob = message_to(tab, "bob@example.com")
    expect(to_bob.locator(".subject")).to_have_text(f"Anna thinks you'll like this: {OFFER}")
    expect(message_to(tab, "carla@example.com").locator(".text")).to_contain_text('Anna wrote: "Coffee on me!"')
    to_bob.get_by_text("HTML part").click()
    html_part = page.frame_locator(f"#{to_bob.get_attribute('id')} iframe").locator("body")
    expect(html_part).to_contain_text("Anna")
    expect(html_part).to_contain_text(OFFER)
    tab.shot("outbox-html-part")

    # Bob follows the tracked link in his email: the offer says who sent it.
    link = to_bob.locator(".text a[href*='/f/']")
    expect(link).to_have_count(1)
    bobs_link = link.get_attribute("href")
    assert bobs_link and bobs_link.startswith(f"{live.url}/f/")
    link.click()
    page.wait_for_url(f"{live.url}/c/demo")
    expect(page.locator(".referral")).to_have_text("Anna sent you this offer.")
    tab.shot("landing-from-bobs-link")

    # Bob forwards it to Carol: generation 2, under the forward Anna made to Bob.
    forward(tab, "Bob", "carol@example.com")
    expect(page.get_by_role("status")).to_contain_text(f"We're sending your friend the offer “{OFFER}”.")
    tab.shot("thanks-generation-2")
    live.wait_for_outbox(3)
    tab.open("/dev/outbox", "outbox-generation-2")
    expect(page.locator("article.message")).to_have_count(3)
    to_carol = message_to(tab, "carol@example.com")
    expect(to_carol.locator(".subject")).to_have_text(f"Bob thinks you'll like this: {OFFER}")
    carols_link = to_carol.locator(".text a[href*='/f/']").get_attribute("href")
    assert carols_link
    bobs, carols = forward_of(live, bobs_link), forward_of(live, carols_link)
    assert (bobs.generation, carols.generation) == (1, 2)
    assert carols.parent_id == bobs.id

    tab.assert_no_errors()


def forward(tab: Tab, sender_name: str, *friends: str, note: str = "") -> None:
    """Fill in the landing page's send-to-friend form as a person would, and send it."""
    page = tab.page
    page.get_by_label("Your name").fill(sender_name)
    for number, friend in enumerate(friends, start=1):
        page.locator(f"#friend-{number}").fill(friend)
    if note:
        page.get_by_label("A short note (optional)").fill(note)
    tab.shot(f"form-filled-by-{sender_name}")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks")


def message_to(tab: Tab, recipient: str) -> Locator:
    """The one message in the outbox page addressed to `recipient`."""
    found = tab.page.locator("article.message").filter(has=tab.page.locator(".to", has_text=recipient))
    expect(found).to_have_count(1)
    return found


def forward_of(server: LiveServer, tracked_link: str) -> Forward:
    """The forward a tracked link stands for."""
    public_id = server.runtime.tokens.verify(Purpose.FORWARD, tracked_link.rsplit("/f/", 1)[1])
    with server.runtime.db.reading() as session:
        return session.scalars(select(Forward).where(Forward.public_id == public_id)).one()
