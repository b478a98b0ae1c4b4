"""A refused console form has an error summary at its top (templates/pages/console/_error_summary.html):
"There is a problem", each error a link to the field it is about, announced and focused on load."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.runtime import Runtime
from tests.helpers import csrf_token, make_campaign, staff_client
from tests.integration.test_campaigns_console import new_campaign_form
from tests.integration.test_contests import WITH_INCENTIVES

CONTROLS = ("input", "select", "textarea")


class _Summary(HTMLParser):
    """The page's form controls by id, and its error summary's box and links."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: set[str] = set()
        self.boxes: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.texts: list[str] = []
        self._depth = 0  # inside the summary: how many elements deep

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in CONTROLS and attributes.get("id") and attributes.get("type") != "hidden":
            self.controls.add(str(attributes["id"]))
        if "error-summary" in (attributes.get("class") or "").split():
            self.boxes.append(attributes)
            self._depth = 1
        elif self._depth:
            self._depth += tag not in ("input", "br", "img")
            if tag == "a":
                self.links.append(str(attributes.get("href")))

    def handle_endtag(self, _tag: str) -> None:
        if self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and data.strip():
            self.texts.append(data.strip())


def summary_of(page: str) -> _Summary:
    parser = _Summary()
    parser.feed(page)
    return parser


@dataclass(frozen=True)
class Refusal:
    role: str
    path: str  # the page with the form
    post: str  # where it posts
    data: Callable[[FlaskClient, str], dict[str, Any]]  # the refused submission, from the page
    errors: int  # how many errors the summary lists


def _campaign(client: FlaskClient, _page: str) -> dict[str, Any]:
    return new_campaign_form(client, cap_friends_per_sender_per_day="ten", cap_submissions_per_ip_per_hour="-5")


REFUSALS = {
    "new campaign": Refusal("marketer", "/console/campaigns/new", "/console/campaigns/new", _campaign, 2),
    "end for good": Refusal(
        "marketer",
        "/console/campaigns/spring",
        "/console/campaigns/spring/status",
        lambda _c, page: {"csrf_token": csrf_token(page), "status": "ended", "reason": "", "confirm": "nope"},
        2,
    ),
    "duplicate": Refusal(
        "marketer",
        "/console/campaigns/spring/duplicate",
        "/console/campaigns/spring/duplicate",
        lambda _c, page: {"csrf_token": csrf_token(page), "slug": "spring"},
        1,
    ),
    "variant": Refusal(
        "marketer",
        "/console/campaigns/spring/variants",
        "/console/campaigns/spring/variants",
        lambda _c, page: {"csrf_token": csrf_token(page), "name": "", "weight": "1", "wrapper": "plain"},
        1,
    ),
    "contest": Refusal(
        "marketer",
        "/console/campaigns/spring/contests",
        "/console/campaigns/spring/contests",
        lambda _c, page: {"csrf_token": csrf_token(page), "metric": "friends-reached", "time_zone": "Nowhere/Else"},
        -1,  # every field it needs and has not: their number is the form's to say
    ),
    "coupons": Refusal(
        "marketer",
        "/console/campaigns/spring/coupons",
        "/console/campaigns/spring/coupons",
        lambda _c, page: {"csrf_token": csrf_token(page), "action": "generate", "count": "0", "prefix": ""},
        1,
    ),
    "templates": Refusal(
        "marketer",
        "/console/campaigns/spring/templates",
        "/console/campaigns/spring/templates",
        lambda _c, page: {"csrf_token": csrf_token(page)},
        1,
    ),
    "logo": Refusal(
        "marketer",
        "/console/campaigns/spring/logo",
        "/console/campaigns/spring/logo",
        lambda _c, page: {"csrf_token": csrf_token(page)},
        1,
    ),
    "webhook": Refusal(
        "marketer",
        "/console/webhooks",
        "/console/webhooks",
        lambda _c, page: {"csrf_token": csrf_token(page), "url": "ftp://example.com/hook"},
        -1,
    ),
    "invite": Refusal(
        "admin",
        "/console/users",
        "/console/users",
        lambda _c, page: {"csrf_token": csrf_token(page), "email": "nobody", "role": "king", "team": "default"},
        2,
    ),
    "api key": Refusal(
        "admin",
        "/console/api-keys",
        "/console/api-keys",
        lambda _c, page: {"csrf_token": csrf_token(page), "name": "", "role": "marketer", "team": "default"},
        1,
    ),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_console_form_sums_its_errors_up_at_its_top(app: Flask, runtime: Runtime, refusal: Refusal) -> None:
    if refusal.path != "/console/campaigns/new":
        # With incentives: a contest or coupons may be set up.
        make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES)
    client = staff_client(app, refusal.role)
    page = client.get(refusal.path)
    assert page.status_code == 200, refusal.path
    assert not summary_of(page.text).boxes  # nothing refused yet: no summary

    refused = client.post(refusal.post, data=refusal.data(client, page.text))
    assert 400 <= refused.status_code < 500, (refused.status_code, refused.text[:500])
    found = summary_of(refused.text)
    (box,) = found.boxes
    assert box.get("role") == "alert" and box.get("tabindex") == "-1" and "autofocus" in box
    assert box.get("id") == "error-summary" and found.texts[0] == "There is a problem"
    # Each error a link to a field of the page, by the field's id.
    assert found.links and all(link.startswith("#") for link in found.links)
    assert {link[1:] for link in found.links} <= found.controls, (found.links, sorted(found.controls))
    if refusal.errors > 0:
        assert len(found.links) == refusal.errors, found.texts
    # Each error is said beside its field too, word for word.
    shown = html.unescape(refused.text)
    assert all(shown.count(text) >= 2 for text in found.texts[1:]), found.texts
