"""The proof of work past the soft threshold, in a real browser: no "I'm not a robot" box to
tick; sending the form shows "Checking…" (announced) while the browser works, then the form goes
through; when the check fails, the form stays as typed with a clear error, and sending again
works. Screenshots of every step are kept."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import update

from engine.models import Campaign
from tests.e2e.browser.conftest import LiveApp, Tab
from tests.e2e.browser.test_consumer_flow import forward

CHECKING = "Checking… one moment, please."
FAILED = "The automatic check did not work, so nothing was sent yet. Please send the form again."


def ask_after_one_forward(live: LiveApp) -> None:
    """The demo campaign asks for the check from an address's second forward in an hour."""
    with live.runtime.db.transaction() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.slug == "demo")
            .values(caps={"challenge_after_submissions_per_ip_per_hour": 1})
        )


def record_status(page: Page) -> list[str]:
    """Every text the check's status line shows (while it is visible), as it changes: the form
    may be gone before an assertion could look."""
    seen: list[str] = []

    def report(text: str) -> None:
        seen.append(text)

    page.expose_function("reportChallengeStatus", report)
    page.evaluate(
        """() => {
          const status = document.getElementById("challenge-status");
          new MutationObserver(() => {
            if (status.textContent && status.checkVisibility()) window.reportChallengeStatus(status.textContent);
          }).observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    return seen


def fill(page: Page, name: str, friend: str) -> None:
    page.get_by_label("Your name").fill(name)
    page.locator("#friend-1").fill(friend)


def test_the_check_runs_without_a_checkbox_and_the_form_goes_after_checking(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    ask_after_one_forward(live)
    tab.open("/c/demo", "landing")
    forward(tab, "Anna", "bob@example.com")  # under the threshold: no check

    tab.open("/c/demo", "landing-past-the-threshold")
    expect(page.locator("altcha-widget")).to_be_attached()
    expect(page.locator("altcha-widget .altcha")).to_have_attribute("data-state", "unverified")
    expect(page.get_by_text("I'm not a robot")).to_be_hidden()
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_text("Protected by ALTCHA")).to_be_hidden()
    expect(page.get_by_text("your browser does a quick automatic check when you send this form")).to_be_visible()
    expect(page.locator("#challenge-status")).to_be_empty()

    fill(page, "Anna", "carla@example.com")
    seen = record_status(page)
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks")
    expect(page.get_by_role("status")).to_contain_text("We're sending your friend the offer")
    tab.shot("thanks-after-the-check")
    assert seen == [CHECKING]
    live.wait_for_outbox(2)
    tab.assert_no_errors()


def test_a_failed_check_keeps_the_form_and_sending_again_works(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    ask_after_one_forward(live)
    tab.open("/c/demo", "landing")
    forward(tab, "Anna", "bob@example.com")
    tab.open("/c/demo", "landing-past-the-threshold")

    # The challenge cannot be fetched (a network error, say): the widget fails.
    page.route("**/c/demo/challenge", lambda route: route.abort())
    fill(page, "Anna", "carla@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    status = page.get_by_role("status").filter(has_text=FAILED)
    expect(status).to_be_visible()
    assert page.url == f"{live.url}/c/demo"
    expect(page.get_by_label("Your name")).to_have_value("Anna")
    expect(page.locator("#friend-1")).to_have_value("carla@example.com")
    tab.shot("the-check-failed")

    # Back online: sending again runs a fresh check and goes through.
    page.unroute("**/c/demo/challenge")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks")
    tab.shot("thanks-after-trying-again")
    live.wait_for_outbox(2)
    # The aborted request is the only error the page logged.
    assert [e for e in tab.errors if "/challenge" not in e and "ALTCHA" not in e] == []
