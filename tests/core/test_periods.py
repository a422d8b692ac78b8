"""Anchored billing periods: no drift, exact tiling, right lengths (core/periods.py)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.periods import (
    Interval,
    IntervalUnit,
    Period,
    add_interval,
    add_months,
    days_between,
    period_at,
    period_containing,
    period_index,
    period_start,
)

anchors = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))
days = st.dates(min_value=date(1950, 1, 1), max_value=date(2130, 12, 31))
intervals = st.builds(
    Interval, unit=st.sampled_from(list(IntervalUnit)), count=st.integers(min_value=1, max_value=13)
)
MONTHLY = Interval(IntervalUnit.MONTH)
YEARLY = Interval(IntervalUnit.YEAR)


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


# --- examples ------------------------------------------------------------------------------


def test_an_anchor_on_the_31st_clamps_to_february_then_returns_to_the_31st() -> None:
    anchor = date(2026, 1, 31)

    starts = [period_start(anchor, MONTHLY, k) for k in range(5)]

    assert starts == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
    ]


def test_an_anchor_on_the_31st_lands_on_february_29_in_a_leap_year() -> None:
    anchor = date(2027, 12, 31)

    assert period_at(anchor, MONTHLY, 2) == Period(date(2028, 2, 29), date(2028, 3, 31))
    assert period_at(anchor, MONTHLY, 2).days == 31


def test_february_2028_has_29_days_and_february_2027_has_28() -> None:
    assert period_at(date(2028, 2, 1), MONTHLY, 0) == Period(date(2028, 2, 1), date(2028, 3, 1))
    assert period_at(date(2028, 2, 1), MONTHLY, 0).days == 29
    assert period_at(date(2027, 2, 1), MONTHLY, 0).days == 28


def test_a_year_from_march_2027_spans_the_leap_day_and_has_366_days() -> None:
    period = period_at(date(2027, 3, 1), YEARLY, 0)

    assert period == Period(date(2027, 3, 1), date(2028, 3, 1))
    assert period.days == 366
    assert period_at(date(2028, 3, 1), YEARLY, 0).days == 365


def test_a_yearly_anchor_on_february_29_keeps_coming_back_to_the_leap_day() -> None:
    anchor = date(2028, 2, 29)

    periods = [period_at(anchor, YEARLY, k) for k in range(5)]

    assert [p.start for p in periods] == [
        date(2028, 2, 29),
        date(2029, 2, 28),
        date(2030, 2, 28),
        date(2031, 2, 28),
        date(2032, 2, 29),
    ]
    assert [p.days for p in periods] == [365, 365, 365, 366, 365]
    assert period_at(anchor, YEARLY, -1) == Period(date(2027, 2, 28), date(2028, 2, 29))


def test_quarters_weeks_and_days() -> None:
    anchor = date(2026, 11, 30)

    assert period_at(anchor, Interval(IntervalUnit.QUARTER), 0) == Period(
        date(2026, 11, 30), date(2027, 2, 28)
    )
    assert period_at(anchor, Interval(IntervalUnit.QUARTER), 1) == Period(
        date(2027, 2, 28), date(2027, 5, 30)
    )
    assert period_at(anchor, Interval(IntervalUnit.WEEK, 2), 1) == Period(
        date(2026, 12, 14), date(2026, 12, 28)
    )
    assert period_at(anchor, Interval(IntervalUnit.DAY, 3), -1) == Period(
        date(2026, 11, 27), date(2026, 11, 30)
    )


def test_period_containing_before_the_anchor_counts_backwards() -> None:
    anchor = date(2026, 3, 31)

    assert period_index(anchor, MONTHLY, date(2026, 3, 30)) == -1
    assert period_containing(anchor, MONTHLY, date(2026, 3, 30)) == Period(
        date(2026, 2, 28), date(2026, 3, 31)
    )
    assert period_containing(anchor, MONTHLY, date(2026, 2, 27)) == Period(
        date(2026, 1, 31), date(2026, 2, 28)
    )


def test_add_months_clamps_and_crosses_years_both_ways() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 15), -1) == date(2025, 12, 15)
    assert add_months(date(2026, 12, 31), 14) == date(2028, 2, 29)
    assert add_months(date(2026, 1, 1), -13) == date(2024, 12, 1)


def test_period_membership_is_half_open() -> None:
    period = Period(date(2026, 1, 31), date(2026, 2, 28))

    assert date(2026, 1, 31) in period
    assert date(2026, 2, 27) in period
    assert date(2026, 2, 28) not in period
    assert date(2026, 1, 30) not in period
    assert days_between(period.start, period.end) == period.days == 28


def test_an_interval_counts_at_least_one_known_unit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Interval(IntervalUnit.MONTH, 0)
    with pytest.raises(ValueError, match="fortnight"):
        Interval("fortnight")  # type: ignore[arg-type]
    assert Interval("month", 3) == Interval(IntervalUnit.MONTH, 3)  # type: ignore[arg-type]
    assert Interval(IntervalUnit.QUARTER, 2).months() == 6
    assert Interval(IntervalUnit.WEEK, 2).days() == 14
    assert Interval(IntervalUnit.YEAR).days() is None


# --- properties ----------------------------------------------------------------------------


@given(anchor=anchors, k=st.integers(min_value=-400, max_value=400))
def test_monthly_period_k_is_the_anchor_moved_k_months_clamped(anchor: date, k: int) -> None:
    start = period_start(anchor, MONTHLY, k)

    month_index = anchor.year * 12 + anchor.month - 1 + k
    year, month = divmod(month_index, 12)
    assert start == date(year, month + 1, min(anchor.day, _last_day(year, month + 1)))
    assert start == add_months(anchor, k)


@given(anchor=anchors, steps=st.lists(st.integers(min_value=1, max_value=30), max_size=12))
def test_walking_period_by_period_never_drifts_from_the_anchor(
    anchor: date, steps: list[int]
) -> None:
    # Whatever path leads to period k (one period at a time, or any jumps), its start is the
    # anchor moved k months: the clamped days of short months never stick.
    k = 0
    current = period_at(anchor, MONTHLY, 0)
    for step in steps:
        for _ in range(step):
            k += 1
            following = period_containing(anchor, MONTHLY, current.end)
            assert following.start == current.end
            current = following
        assert current == period_at(anchor, MONTHLY, k)
        assert current.start == add_months(anchor, k)
        assert current.start.day == min(
            anchor.day, _last_day(current.start.year, current.start.month)
        )


@given(anchor=anchors, interval=intervals, k=st.integers(min_value=-60, max_value=60))
def test_consecutive_periods_tile_time_without_gap_or_overlap(
    anchor: date, interval: Interval, k: int
) -> None:
    period = period_at(anchor, interval, k)
    following = period_at(anchor, interval, k + 1)

    assert period.end == following.start
    assert period.start < period.end
    assert period.start == add_interval(anchor, interval, k)
    assert period.days + following.days == days_between(period.start, following.end)


@given(anchor=anchors, interval=intervals, k=st.integers(min_value=-60, max_value=60))
def test_period_lengths_are_real_calendar_lengths(anchor: date, interval: Interval, k: int) -> None:
    period = period_at(anchor, interval, k)

    fixed = interval.days()
    if fixed is not None:
        assert period.days == fixed
    else:
        months = interval.months()
        assert months is not None
        # Every n consecutive calendar months span between these bounds (a clamped start may
        # shorten or lengthen one period by up to 3 days).
        assert 28 * months - 3 <= period.days <= 31 * months + 3
        if interval.unit == IntervalUnit.YEAR and interval.count == 1:
            assert period.days in (365, 366)
            if (anchor.month, anchor.day) != (2, 29):
                # Unclamped, a year is 366 days exactly when it holds a February 29.
                holds_leap_day = any(
                    date(year, 2, 29) in period
                    for year in (period.start.year, period.end.year)
                    if calendar.isleap(year)
                )
                assert (period.days == 366) == holds_leap_day


@given(anchor=anchors, interval=intervals, day=days)
def test_period_containing_contains_the_day_before_or_after_the_anchor(
    anchor: date, interval: Interval, day: date
) -> None:
    k = period_index(anchor, interval, day)
    period = period_containing(anchor, interval, day)

    assert day in period
    assert period == period_at(anchor, interval, k)
    assert (k < 0) == (day < anchor)
    # No other period contains it.
    assert day not in period_at(anchor, interval, k - 1)
    assert day not in period_at(anchor, interval, k + 1)


@given(anchor=anchors, interval=intervals, k=st.integers(min_value=-60, max_value=60))
def test_period_index_is_consistent_with_period_at(
    anchor: date, interval: Interval, k: int
) -> None:
    period = period_at(anchor, interval, k)

    assert period_index(anchor, interval, period.start) == k
    assert period_index(anchor, interval, period.end - timedelta(days=1)) == k
    assert period_index(anchor, interval, period.end) == k + 1
