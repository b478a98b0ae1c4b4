"""The dashboard and the forward tree as a marketer meets them: K measured on mature forwards
(with the window said) against K over every forward, a date range that narrows the charts and
is refused beside its field when wrong, and a forward's tree folded with <details>."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from engine.clock import FixedClock
from engine.db import Database
from engine.models import Campaign, Forward
from engine.runtime import Runtime
from engine.services import analytics
from tests.helpers import staff_client, visible_text

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
JAN = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Made:
    name: str
    parent: str | None
    day: int  # of January
    contact: str | None = None  # the sender's own contact (generation 1)
    sender: str = "Friend"


# Mature (made by 5 January): Ann and Bo start it; 3 of their 4 forwards are forwarded on, and so
# on down. Young (19 January, yesterday): the friends of C1 and C2 forwarded, nobody after them yet.
#   A1 (Ann) ── B1, B2 ── C1 (under B1) ── D1 D2 D3
#   A2 (Ann) ── B3 ── C2 ── D4 D5 D6
#   A3 (Bo)  ── B4
#   A4 (Bo)
SPREAD = [
    Made("A1", None, 1, "hash-of-ann", "Ann"),
    Made("A2", None, 1, "hash-of-ann", "Ann"),
    Made("A3", None, 1, "hash-of-bo", "Bo"),
    Made("A4", None, 1, "hash-of-bo", "Bo"),
    Made("B1", "A1", 3, sender="Bea"),
    Made("B2", "A1", 3, sender="Bea"),
    Made("B3", "A2", 3, sender="Cas"),
    Made("B4", "A3", 3, sender="Dirk"),
    Made("C1", "B1", 5, sender="Eva"),
    Made("C2", "B3", 5, sender="Fay"),
    *(Made(f"D{i}", "C1", 19, sender="Gus") for i in (1, 2, 3)),
    *(Made(f"D{i}", "C2", 19, sender="Hal") for i in (4, 5, 6)),
]


def spread(db: Database, campaign: Campaign, made: list[Made] = SPREAD) -> dict[str, Forward]:
    forwards: dict[str, Forward] = {}
    with db.transaction() as session:
        for m in made:
            parent = forwards.get(m.parent) if m.parent else None
            forward = Forward(
                public_id=f"pub{m.name}",
                campaign_id=campaign.id,
                parent_id=parent.id if parent else None,
                generation=parent.generation + 1 if parent else 1,
                channel="email",
                sender_name=m.sender,
                sender_contact_hash=m.contact,
                recipient_contact_hash=f"friend-{m.name}",
                policy_name="custom",
                policy_version=1,
                client_ip_hash=f"ip-{m.sender}",
                created_at=JAN + timedelta(days=m.day - 1),
            )
            session.add(forward)
            session.flush()
            forwards[m.name] = forward
    return forwards


@pytest.fixture
def seeded(runtime: Runtime, campaign: Campaign, clock: FixedClock) -> Campaign:
    clock.set(NOW)
    spread(runtime.db, campaign)
    return campaign


def test_headline_k_is_of_mature_forwards_and_says_its_window(app: Flask, runtime: Runtime, seeded: Campaign) -> None:
    m = analytics.campaign_metrics(runtime.db, seeded.slug, NOW)
    # Every forward: 16 invites by 9 senders, 7 of them forwarded on; the 6 of yesterday drag it down.
    assert m.overall.k == pytest.approx(7 / 9)
    # No cycle time (nobody clicked): a 7-day window, forwards up to 12 January. Their 7 senders
    # (Ann, Bo and the friends of A1, A2, A3, B1, B3) brought 7 new ones (A1-A3, B1, B3, C1, C2).
    assert m.mature is not None and m.mature.window_days == 7
    assert m.mature.k == pytest.approx(1.0)
    assert m.overall.k is not None and m.mature.k is not None and m.mature.k > m.overall.k
    assert [(c.generation, c.k) for c in m.mature.generations] == [(1, 1.5), (2, pytest.approx(2 / 3)), (3, 1.0)]

    page = staff_client(app, "marketer").get(f"/console/campaigns/{seeded.slug}/dashboard")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "K on mature forwards 1.00 Spreading by itself" in text
    assert "Forwards made up to Jan 12, 2026" in text and "at least 7 days old, whose friends have had time" in text
    assert "All forwards, young ones included: K 0.78." in text
    # The K chart draws generations 1 to 3 (their mature forwards), with the K = 1 line.
    assert re.search(r'<svg class="chart bars"[^>]*aria-label="K of each generation', page.text)
    assert "generation 4: " not in page.text.split("K by generation")[1].split("</svg>")[0]


def test_a_date_range_narrows_the_charts_and_the_cohort(app: Flask, runtime: Runtime, seeded: Campaign) -> None:
    client = staff_client(app, "marketer")
    page = client.get(f"/console/campaigns/{seeded.slug}/dashboard?from=2026-01-03&to=2026-01-05")
    assert page.status_code == 200
    text = visible_text(page.text)
    # B1-B4, C1, C2 by 5 senders, of which B1, B3, C1 and C2 were forwarded on.
    assert "K on mature forwards 0.80" in text and "From Jan 3, 2026" in text
    table = page.text.split("Reach over time as a table")[2]
    days = re.findall(r'<th scope="row"><time datetime="[^"]+">(Jan \d+, 2026)</time></th>', table.split("</table>")[0])
    assert days == ["Jan 3, 2026", "Jan 5, 2026"]
    assert 'value="2026-01-03"' in page.text


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("from=3+January", "from", "Enter a date as year-month-day"),
        ("from=2026-01-10&to=2026-01-02", "to", "The end must be on or after the start."),
        ("from=2027-01-01", "from", "The start cannot be after today."),
    ],
)
def test_a_bad_range_is_a_form_error_not_a_failure(
    app: Flask, seeded: Campaign, query: str, field: str, words: str
) -> None:
    page = staff_client(app, "marketer").get(f"/console/campaigns/{seeded.slug}/dashboard?{query}")
    assert page.status_code == 400
    assert f'aria-describedby="range-{field}-error"' in page.text
    assert re.search(rf'<p class="errors" id="range-{field}-error">{re.escape(words)}', page.text)
    # The page is all there, over every day.
    assert "The date range was not applied: every day is shown." in visible_text(page.text)
    assert "K on mature forwards 1.00" in visible_text(page.text)


def test_the_forward_tree_folds_largest_branches_first(app: Flask, runtime: Runtime, seeded: Campaign) -> None:
    client = staff_client(app, "marketer")
    dashboard = client.get(f"/console/campaigns/{seeded.slug}/dashboard").text
    assert f"/console/campaigns/{seeded.slug}/forwards/pubA1" in dashboard  # top ambassadors and chains
    page = client.get(f"/console/campaigns/{seeded.slug}/forwards/pubA1")
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html
    assert html.count("<details") == 3  # A1, B1, C1: the forwards with forwards below them
    # B1 (4 below) before B2 (none); each node says its generation, channel and figures.
    assert html.index("pubB1") < html.index("pubB2")
    text = visible_text(html)
    assert "Ann gen. 1 email 0 clicks 0 conversions 6 forwards below pubA1" in text
    # No contact of anyone, not even hashed.
    assert "friend-" not in html and "hash-of-" not in html
    # A forward deeper down shows the chain above it.
    deeper = client.get(f"/console/campaigns/{seeded.slug}/forwards/pubC1").text
    chain = deeper.split('<ol class="chain">')[1].split("</ol>")[0]
    assert visible_text(chain) == "Ann gen. 1 Bea gen. 2"
    assert client.get(f"/console/campaigns/{seeded.slug}/forwards/nope").status_code == 404
    compliance = staff_client(app, "compliance", "c@staff.example")
    assert compliance.get(f"/console/campaigns/{seeded.slug}/forwards/pubA1").status_code == 403


def test_a_wide_tree_shows_its_largest_children_and_how_many_more(
    app: Flask, runtime: Runtime, campaign: Campaign, clock: FixedClock
) -> None:
    clock.set(NOW)
    wide = [Made("R", None, 1, "ann", "Ann"), *(Made(f"K{i}", "R", 2, sender=f"K{i}") for i in range(11))]
    wide += [Made(f"L{i}", "K7", 3, sender="L") for i in range(3)]
    spread(runtime.db, campaign, wide)
    page = staff_client(app, "marketer").get(f"/console/campaigns/{campaign.slug}/forwards/pubR").text
    text = visible_text(page)
    assert "and 3 more forwards, smaller" in text
    assert page.index("pubK7") < page.index("pubK0")  # the one with forwards below it first


def test_a_large_campaigns_mature_k_over_a_date_range_is_read_once_per_refresh(
    runtime: Runtime, seeded: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From a given day on, K is counted from the forwards' rows (the roll-up of first days
    # cannot say who sent after that day), which is slow for a large campaign: kept per refresh.
    from engine.services.analytics import dashboard

    monkeypatch.setattr(dashboard, "REFRESH_ON_READ_UP_TO", 5)  # 16 forwards: a large campaign here
    reads: list[object] = []
    real = dashboard.mature_k

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(dashboard, "mature_k", counted)
    since = (NOW - timedelta(days=60)).date()
    first = analytics.campaign_metrics(runtime.db, seeded.slug, NOW, since=since)
    again = analytics.campaign_metrics(runtime.db, seeded.slug, NOW + timedelta(minutes=5), since=since)
    assert len(reads) == 1 and again.mature == first.mature
    # The next day, other forwards have come of age: read again.
    analytics.campaign_metrics(runtime.db, seeded.slug, NOW + timedelta(days=1), since=since)
    assert len(reads) == 2
