"""A marketer gives the demo campaign its brand's logo: uploaded on the campaign's e-mail logo
page, it shows at the top of the e-mail in the console's preview (fetched from its public,
versioned address), and a friend's e-mail in the outbox names it the same way."""

from __future__ import annotations

import io
import re

from PIL import Image
from playwright.sync_api import expect

from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD

MARKETER = "marketer@staff.example"


def logo_file(tmp_path):  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    Image.new("RGBA", (480, 120), (120, 60, 20, 255)).save(out, "PNG")
    path = tmp_path / "koffie-logo.png"
    path.write_bytes(out.getvalue())
    return path


def test_an_uploaded_logo_tops_the_email_preview(tab: Tab, live: LiveApp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tab.page
    live.runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")

    tab.open("/console/campaigns/demo", "campaign")
    page.get_by_role("navigation", name="Pages of this campaign").get_by_role("link", name="E-mail logo").click()
    expect(page.get_by_text("No logo: the e-mail shows the brand's name.")).to_be_visible()
    page.get_by_label("Logo").set_input_files(logo_file(tmp_path))
    page.get_by_role("button", name="Check and upload").click()
    expect(page.get_by_role("status")).to_contain_text("Logo stored: 480 x 120 pixels.")
    shown = page.get_by_role("img", name="Koffie & Co")
    expect(shown).to_have_attribute("width", "200")
    tab.shot("logo-stored")

    page.get_by_role("link", name="preview the messages").click()
    email = page.frame_locator("iframe").first
    logo = email.get_by_role("img", name="Koffie & Co")
    expect(logo).to_have_attribute("src", re.compile(rf"^{re.escape(live.url)}/c/demo/logo\.png\?v=[0-9a-f]{{16}}$"))
    # Loaded from the public address, at the size the e-mail gives it.
    logo.evaluate("img => img.decode()")
    assert logo.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]") == [480, 200]
    tab.shot("preview-with-logo")
    page.locator("iframe").first.screenshot(path=tab.folder / "preview-email-frame.png")
    tab.assert_no_errors()
