"""The dashboard's pure parts: nice axis ticks, bar rows whose labels never cross the K = 1 line,
small multiples, the maturity window of K, the projection's sentence in every state, the date
range, and the order of a forward tree's branches with what is left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from flask import Flask

from engine.i18n import init_i18n
from engine.services.analytics import project_reach
from engine.services.analytics.branches import NodeRow, assemble, largest_first
from engine.services.analytics.maturity import Cohort, mature_before, maturity_days
from engine.web.console.charts import (
    ROW_BAR_HEIGHT,
    ROW_BAR_TOP,
    ROW_TEXT,
    TEXT_SIZE,
    bar_chart,
    nice_ticks,
    small_multiple,
)
from engine.web.console.date_range import parse_range
from engine.web.console.projection_text import ProjectionState, projection_sentence, projection_state

# -- ticks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (7, [0, 2, 4, 6, 8]),
        (100, [0, 20, 40, 60, 80, 100]),
        (1234, [0, 500, 1000, 1500]),
        (3, [0, 1, 2, 3]),
        (1, [0, 1]),
        (0, [0, 1]),
        (48_000, [0, 10_000, 20_000, 30_000, 40_000, 50_000]),
    ],
)
def test_ticks_are_round_numbers_covering_the_largest_value(maximum: int, ticks: list[int]) -> None:
    assert nice_ticks(maximum) == ticks


def test_ticks_of_a_ratio_may_be_fractions() -> None:
    assert nice_ticks(0.97, integers=False) == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert nice_ticks(2.4, integers=False) == [0, 0.5, 1, 1.5, 2, 2.5]


def test_every_value_gets_at_least_three_ticks_once_above_one() -> None:
    for maximum in range(2, 5000, 7):
        ticks = nice_ticks(maximum)
        assert ticks[-1] >= maximum and 3 <= len(ticks) <= 6, maximum


# -- charts ------------------------------------------------------------------------------------------


def test_a_small_multiple_has_its_own_scale_and_dates_that_stay_inside() -> None:
    days = [date(2026, 12, d) for d in range(1, 11)]
    small = small_multiple("generation 2", "series-2", days, [0, 1, 1, 2, 3, 3, 4, 5, 6, 7])
    big = small_multiple("generation 1", "series-1", days, [100 * v for v in range(10)])
    # Each series fills its own plot: the small one is not flattened by the big one.
    assert small.points[-1].y == pytest.approx(small.top + (small.bottom - small.top) * (1 - 7 / 8))
    assert [t.value for t in small.y_ticks] == [0, 2, 4, 6, 8]
    assert [t.value for t in big.y_ticks][-1] == 1000
    assert [t.anchor for t in small.x_ticks] == ["start", "middle", "end"]
    assert small.x_ticks[0].position == small.left and small.x_ticks[-1].position == small.right


def test_bar_labels_and_values_never_cross_the_marker_line() -> None:
    chart = bar_chart([("generation 1", 1.02, "1.02"), ("generation 2", 0.98, "0.98")], marker=1.0)
    assert chart.marker_x is not None
    for row in chart.rows:
        # The text sits on its own line above the bar; the marker spans the bar's band only.
        text_bottom = row.top + ROW_TEXT + 4  # descenders
        assert text_bottom < row.top + ROW_BAR_TOP - 2
        assert row.text_y - TEXT_SIZE >= row.top
    # The marker's label has a header line above every row, and stays inside the chart.
    assert chart.rows[0].top >= 20 and chart.marker_anchor == "end"
    assert chart.height == chart.rows[-1].top + 44 and ROW_BAR_HEIGHT < 44 - ROW_BAR_TOP


def test_the_k_scale_always_shows_k_one() -> None:
    chart = bar_chart([("generation 1", 0.2, "0.20")], marker=1.0)
    assert chart.marker_x == chart.width and chart.rows[0].length == pytest.approx(chart.width * 0.2)


# -- mature cohorts --------------------------------------------------------------------------------------


def test_the_maturity_window_is_three_cycles_in_whole_days_within_bounds() -> None:
    assert maturity_days(None) == 7  # no cycle time yet
    assert maturity_days(3600) == 1  # three hours: at least a day
    assert maturity_days(86400) == 3
    assert maturity_days(1.5 * 86400) == 5  # 4.5 days, rounded up
    assert maturity_days(30 * 86400) == 14


def test_a_mature_forward_is_one_of_a_day_wholly_older_than_the_window() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert mature_before(now, 3) == date(2026, 12, 4)  # forwards of the 3rd and earlier


def test_k_of_a_cohort_is_new_senders_per_sender() -> None:
    assert Cohort(None, invites=10, senders=4, became_senders=5).k == pytest.approx(1.25)
    assert Cohort(None, invites=0, senders=0, became_senders=0).k is None


# -- the projection's sentence ---------------------------------------------------------------------------


@pytest.fixture
def english() -> Iterator[None]:
    app = Flask(__name__)
    init_i18n(app)
    with app.test_request_context():
        yield


def projection(*, wave: int = 40, k: float = 0.8, cycle_days: float = 2.0, horizon_days: float = 30.0):  # type: ignore[no-untyped-def]
    return project_reach(current=100, wave=wave, k=k, cycle_days=cycle_days, horizon_days=horizon_days, ceiling=None)


@pytest.mark.parametrize(
    ("made", "forwards", "state", "words"),
    [
        (lambda: None, 0, ProjectionState.NO_FORWARDS, "nobody has forwarded"),
        (lambda: None, 12, ProjectionState.NO_CYCLE, "needs a K and a cycle time"),
        (lambda: projection(horizon_days=0), 100, ProjectionState.ENDED, "has ended: its reach stays at 100"),
        (lambda: projection(horizon_days=1), 100, ProjectionState.LESS_THAN_A_CYCLE, "Less than one cycle (2.0 days)"),
        (lambda: projection(wave=0), 100, ProjectionState.QUIET, "Nobody forwarded in the last cycle"),
        (lambda: projection(k=0.0), 100, ProjectionState.FLAT, "hardly any more"),
        (lambda: projection(horizon_days=2), 100, ProjectionState.GROWING, "for 1 more cycle."),
        (lambda: projection(), 100, ProjectionState.GROWING, "the 40 forwards of the last cycle (2.0 days)"),
    ],
)
def test_the_projection_reads_right_in_every_state(
    english: None, made: object, forwards: int, state: ProjectionState, words: str
) -> None:
    found = made()  # type: ignore[operator]
    assert projection_state(found, forwards) is state
    sentence = projection_sentence(found, forwards)
    assert words in sentence
    assert "0 more from the 0" not in sentence


def test_the_ordinary_projection_names_its_total_and_cycles(english: None) -> None:
    sentence = projection_sentence(projection(), 100)
    # 15 cycles of 2 days in 30; 40 * (0.8 + ... + 0.8**15), about 154 more.
    assert sentence.startswith("Projected reach: about 254 forwards within 30.0 days, 154 more than now")
    assert sentence.endswith("for 15 more cycles.")


# -- the date range -----------------------------------------------------------------------------------------

TODAY = date(2026, 12, 7)


def test_a_range_is_two_optional_days(english: None) -> None:
    assert parse_range({}, TODAY).narrowed is False
    asked = parse_range({"from": "2026-12-01", "to": "2026-12-05"}, TODAY)
    assert (asked.since, asked.until, dict(asked.errors)) == (date(2026, 12, 1), date(2026, 12, 5), {})
    assert parse_range({"to": "2026-12-05"}, TODAY).since is None


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        ({"from": "yesterday"}, "from", "year-month-day"),
        ({"to": "2026-13-01"}, "to", "year-month-day"),
        ({"from": "2026-12-31"}, "from", "after today"),
        ({"from": "2026-12-05", "to": "2026-12-01"}, "to", "on or after the start"),
        ({"from": "2020-01-01", "to": "2026-12-01"}, "to", "at most"),
    ],
)
def test_a_bad_range_is_refused_beside_its_field_and_not_applied(
    english: None, args: dict[str, str], field: str, words: str
) -> None:
    asked = parse_range(args, TODAY)
    assert words in asked.errors[field]
    assert asked.since is None and asked.until is None and not asked.narrowed
    assert asked.typed[field] == args[field]  # shown back as typed


# -- the forward tree ------------------------------------------------------------------------------------------


def row(forward_id: int, parent_id: int | None, descendants: int, children: int = 0, generation: int = 1) -> NodeRow:
    return NodeRow(forward_id, parent_id, f"f{forward_id}", generation, "email", "Ann", 0, 0, children, descendants)


def test_siblings_show_the_largest_branch_first_then_the_oldest() -> None:
    rows = [row(5, 1, 2), row(3, 1, 9), row(4, 1, 2), row(6, 1, 0)]
    assert [r.forward_id for r in largest_first(rows)] == [3, 4, 5, 6]


def test_a_wide_node_shows_its_largest_children_and_says_how_many_more() -> None:
    root = row(1, None, 30, children=12)
    children = [row(100 + i, 1, i, generation=2) for i in range(12)]
    tree, shown = assemble(root, [children], children=8, budget=250)
    assert [c.row.forward_id for c in tree.shown] == [111, 110, 109, 108, 107, 106, 105, 104]
    assert tree.more == 4 and shown == 9


def test_the_budget_goes_to_the_upper_levels_first_and_cut_branches_are_marked() -> None:
    root = row(1, None, 6, children=2)
    level2 = [row(2, 1, 3, children=3, generation=2), row(3, 1, 1, children=1, generation=2)]
    level3 = [row(4, 2, 0, generation=3), row(5, 2, 0, generation=3), row(6, 2, 0, generation=3)]
    level3.append(row(7, 3, 0, generation=3))
    tree, shown = assemble(root, [level2, level3], children=8, budget=5)
    assert shown == 5
    big, small = tree.shown
    assert [c.row.forward_id for c in big.shown] == [4, 5]
    assert big.more == 1
    assert small.cut and small.more == 1  # its child was left out: the page links to its own tree
