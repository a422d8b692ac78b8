"""The pure period, phase and proration arithmetic (subscriptions/services/schedule.py)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.periods import Interval, IntervalUnit, Period
from subscriptions.services.schedule import (
    Cadence,
    PhaseStep,
    Span,
    allocate,
    calendar_anchor,
    monthly_normalized,
    slice_amount,
    slices,
    spans_from_phases,
)

MONTHLY = Interval(IntervalUnit.MONTH)
YEARLY = Interval(IntervalUnit.YEAR)
WEEKLY = Interval(IntervalUnit.WEEK)


def _evergreen(start: date, amount: str = "30.00") -> list[Span]:
    return [Span(start=start, end=None, unit_amount=Decimal(amount))]


def test_a_cadence_on_the_31st_clamps_and_returns() -> None:
    cadence = Cadence(date(2026, 1, 31), MONTHLY)

    assert [cadence.start(k) for k in range(4)] == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
    ]


def test_a_calendar_cadence_keeps_its_billing_day_after_a_clamped_anchor() -> None:
    # Calendar billing on the 31st that starts in February: the anchor is Feb 28.
    cadence = Cadence(date(2026, 2, 28), MONTHLY, day=31)

    assert cadence.start(1) == date(2026, 3, 31)
    assert cadence.start(-1) == date(2026, 1, 31)
    assert cadence.containing(date(2026, 3, 30)) == Period(date(2026, 2, 28), date(2026, 3, 31))


@pytest.mark.parametrize(
    ("start", "day", "anchor"),
    [
        (date(2026, 1, 15), 1, date(2026, 2, 1)),
        (date(2026, 1, 15), 25, date(2026, 1, 25)),
        (date(2026, 1, 25), 25, date(2026, 1, 25)),
        (date(2026, 1, 26), 25, date(2026, 2, 25)),
        (date(2026, 2, 10), 31, date(2026, 2, 28)),
        (date(2026, 12, 20), 1, date(2027, 1, 1)),
    ],
)
def test_calendar_anchor_is_the_next_billing_day_date(start: date, day: int, anchor: date) -> None:
    assert calendar_anchor(start, day) == anchor


def test_the_first_calendar_slice_is_prorated_over_the_full_period_containing_it() -> None:
    # Calendar billing on the 1st, started Jan 15: [Jan 15, Feb 1) of the 31-day January.
    cadence = Cadence(date(2026, 2, 1), MONTHLY, day=1)

    (first,) = slices(cadence, _evergreen(date(2026, 1, 15)), date(2026, 1, 15), date(2026, 2, 1))

    assert first.period == Period(date(2026, 1, 1), date(2026, 2, 1))
    assert first.proration == (17, 31)
    assert slice_amount(first, 1, "USD") == Decimal("16.45")  # 30 x 17 / 31 = 16.4516


def test_a_period_straddling_a_phase_boundary_is_split_in_two_prorated_slices() -> None:
    # Intro price of 45 days, then the evergreen price, billed monthly from Jan 1.
    spans = spans_from_phases(
        [
            PhaseStep(Interval(IntervalUnit.DAY, 45), Decimal("10.00"), label="intro"),
            PhaseStep(None, Decimal("30.00"), label="evergreen"),
        ],
        date(2026, 1, 1),
    )
    cadence = Cadence(date(2026, 1, 1), MONTHLY)

    pieces = slices(cadence, spans, date(2026, 2, 1), date(2026, 3, 1))

    assert [(p.start, p.end, p.span.label, p.proration) for p in pieces] == [
        (date(2026, 2, 1), date(2026, 2, 15), "intro", (14, 28)),
        (date(2026, 2, 15), date(2026, 3, 1), "evergreen", (14, 28)),
    ]
    assert [slice_amount(p, 1, "USD") for p in pieces] == [Decimal("5.00"), Decimal("15.00")]


def test_trial_days_and_days_after_a_term_that_does_not_renew_are_not_billed() -> None:
    spans = spans_from_phases(
        [
            PhaseStep(Interval(IntervalUnit.DAY, 10), Decimal("0"), billable=False),
            PhaseStep(Interval(IntervalUnit.MONTH, 2), Decimal("20.00")),
        ],
        date(2026, 1, 15),
    )
    cadence = Cadence(date(2026, 1, 25), MONTHLY)

    pieces = slices(cadence, spans, date(2026, 1, 15), date(2026, 6, 1))

    assert [(p.start, p.end, p.is_full_period) for p in pieces] == [
        (date(2026, 1, 25), date(2026, 2, 25), True),
        (date(2026, 2, 25), date(2026, 3, 25), True),
    ]


def test_a_renewing_last_phase_is_open_ended() -> None:
    spans = spans_from_phases(
        [PhaseStep(Interval(IntervalUnit.YEAR, 1), Decimal("100"))],
        date(2026, 1, 1),
        last_renews=True,
    )

    assert spans[0].end is None


def test_monthly_normalized_prices_compare_plans_of_any_interval() -> None:
    assert monthly_normalized(Decimal("120"), YEARLY) == Decimal("10")
    assert monthly_normalized(Decimal("30"), Interval(IntervalUnit.QUARTER)) == Decimal("10")
    # 7 per week is 1 per day, 365 / 12 per average month.
    assert monthly_normalized(Decimal("7"), WEEKLY) == Decimal(365) / 12


def test_allocate_puts_the_rounding_remainder_on_the_last_share() -> None:
    shares = allocate(Decimal("20.00"), [Decimal("9.99"), Decimal("4.99"), Decimal("14.99")], "USD")

    assert shares == [Decimal("6.67"), Decimal("3.33"), Decimal("10.00")]
    assert sum(shares) == Decimal("20.00")


def test_allocate_in_yen_has_no_decimals() -> None:
    assert allocate(Decimal("1000"), [Decimal("1"), Decimal("1"), Decimal("1")], "JPY") == [
        Decimal("333"),
        Decimal("333"),
        Decimal("334"),
    ]


# --- properties -----------------------------------------------------------------------------

anchors = st.dates(min_value=date(2000, 1, 1), max_value=date(2080, 12, 31))
intervals = st.builds(
    Interval, unit=st.sampled_from(list(IntervalUnit)), count=st.integers(min_value=1, max_value=4)
)


@settings(max_examples=200)
@given(
    anchor=anchors,
    interval=intervals,
    day=st.one_of(st.none(), st.integers(min_value=1, max_value=31)),
    offset=st.integers(min_value=-400, max_value=400),
    length=st.integers(min_value=1, max_value=800),
)
def test_slices_tile_the_range_without_gap_or_overlap(
    anchor: date, interval: Interval, day: int | None, offset: int, length: int
) -> None:
    if interval.months() is None:
        day = None
    cadence = Cadence(anchor, interval, day)
    start = anchor + timedelta(days=offset)
    end = start + timedelta(days=length)

    pieces = slices(cadence, _evergreen(start - timedelta(days=1)), start, end)

    assert pieces[0].start == start
    assert pieces[-1].end == end
    for before, after in pairwise(pieces):
        assert before.end == after.start
    for piece in pieces:
        assert piece.period.start <= piece.start < piece.end <= piece.period.end
        assert cadence.containing(piece.start) == piece.period


@settings(max_examples=200)
@given(anchor=anchors, day=st.integers(min_value=1, max_value=31), k=st.integers(-30, 30))
def test_calendar_periods_start_on_the_billing_day_or_the_months_last_day(
    anchor: date, day: int, k: int
) -> None:
    cadence = Cadence(calendar_anchor(anchor, day), MONTHLY, day)

    start = cadence.start(k)

    assert start.day == day or (start + timedelta(days=1)).day == 1
    assert cadence.index(start) == k
