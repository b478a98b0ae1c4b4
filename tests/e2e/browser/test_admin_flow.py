"""An admin in a real browser manages staff and keys without the command line: invites a
marketer (their first password shown once), makes them compliance, makes an API key and copies
it (shown once), and turns off the two-factor sign-in of someone who lost their phone. The new
member then signs in with the password they were handed. Screenshots of every step are kept."""

from __future__ import annotations

import pyotp
from playwright.sync_api import expect

from tests.e2e.browser.conftest import Tab
from tests.e2e.live import LiveServer
from tests.helpers import STAFF_PASSWORD

ADMIN = "root@staff.example"
NEWCOMER = "nina@staff.example"
PHONELESS = "piet@staff.example"


def sign_in(tab: Tab, live: LiveServer, email: str, password: str, next_page: str) -> None:
    tab.open(f"/login?next={next_page}", "login")
    tab.page.get_by_label("E-mail address").fill(email)
    tab.page.get_by_label("Password").fill(password)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(f"{live.url}{next_page}")


def test_an_admin_invites_promotes_makes_a_key_and_resets_two_factor(tab: Tab, live: LiveServer) -> None:
    page = tab.page
    staff = live.runtime.staff
    staff.create_user(ADMIN, "admin", STAFF_PASSWORD)
    piet = staff.create_user(PHONELESS, "marketer", STAFF_PASSWORD)
    secret = pyotp.random_base32()
    assert staff.confirm_totp(piet.id, secret, pyotp.TOTP(secret).now())
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)

    sign_in(tab, live, ADMIN, STAFF_PASSWORD, "/console/users")
    tab.shot("staff-accounts")

    # Nina is invited as a marketer: her first password is on this answer, once.
    invite = page.get_by_role("region", name="Invite a staff member")
    invite.get_by_label("E-mail address").fill(NEWCOMER)
    invite.get_by_role("radio", name="Marketer").check()
    invite.get_by_role("button", name="Invite").click()
    shown = page.locator("#new-member")
    expect(shown).to_contain_text(f"Account made for {NEWCOMER}")
    password = page.locator("#first-password").inner_text()
    assert len(password) >= 16
    tab.shot("member-invited")

    # She becomes compliance staff.
    nina = page.locator("tr", has_text=NEWCOMER)
    nina.get_by_label(f"Role of {NEWCOMER}").select_option("compliance")
    nina.get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status")).to_contain_text(f"{NEWCOMER} is now: compliance.")
    expect(page.locator("body")).not_to_contain_text(password)  # shown once
    tab.shot("role-changed")

    # Piet lost his phone: his two-factor sign-in goes off, and he is signed out everywhere.
    piet_row = page.locator(f"#user-{piet.id}")
    expect(piet_row).to_contain_text("on")
    piet_row.get_by_role("button", name="Turn off (lost device)").click()
    expect(page.get_by_role("status")).to_contain_text(f"{PHONELESS}: two-factor sign-in turned off")
    expect(page.locator(f"#user-{piet.id}").get_by_role("button", name="Turn off (lost device)")).to_have_count(0)
    tab.shot("two-factor-reset")

    # A key for the shop's checkout, copied from the one page that shows it.
    page.get_by_role("link", name="API keys").click()
    page.wait_for_url(f"{live.url}/console/api-keys")
    page.get_by_label("Name (the client that will use it)").fill("shop checkout")
    page.get_by_role("radio", name="Marketer").check()
    page.get_by_label("Report coupon codes redeemed", exact=False).check()
    page.get_by_role("button", name="Make the key").click()
    key = page.locator("#new-key-secret").inner_text()
    assert key.startswith("flk_")
    page.get_by_role("button", name="Copy the key").click()
    expect(page.locator("#new-key-secret-copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    tab.shot("key-made-and-copied")
    row = page.locator("table.api-keys tbody tr", has_text="shop checkout")
    expect(row).to_contain_text(key[:12])
    expect(row).to_contain_text("redemptions")
    assert staff.authenticate_key(key) is not None

    tab.open("/console/api-keys", "keys-listed")
    expect(page.locator("body")).not_to_contain_text(key)  # never again

    # Nina signs in with the password she was handed, as compliance staff now.
    page.get_by_role("button", name="Sign out").click()
    sign_in(tab, live, NEWCOMER, password, "/compliance/opt-outs")
    expect(page.get_by_role("heading", name="Opt-out log")).to_be_visible()
    tab.shot("newcomer-signed-in")

    tab.assert_no_errors()


def test_wide_staff_tables_scroll_in_their_own_box_on_a_phone(tab: Tab, live: LiveServer) -> None:
    page = tab.page
    live.runtime.staff.create_user(ADMIN, "admin", STAFF_PASSWORD)
    live.runtime.staff.create_api_key("a client with a rather long name indeed", "marketer")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(tab, live, ADMIN, STAFF_PASSWORD, "/console/users")
    for path in ("/console/users", "/console/api-keys"):
        tab.open(path, path.rsplit("/", 1)[-1] + "-phone")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
    tab.assert_no_errors()
