"""Anchored billing periods.

Period k starts at `anchor + k * interval`, always computed from the anchor, never by adding to
the previous period: an anchor on Jan 31 gives Feb 28 (or 29), then Mar 31, not Mar 28. Be
careful here: every invoice and every proration depends on these few functions.

Dates are UTC calendar days; a period is the half-open range [start, end).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class IntervalUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class Interval:
    unit: IntervalUnit
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("an interval counts at least 1 unit")
        object.__setattr__(self, "unit", IntervalUnit(self.unit))

    def months(self) -> int | None:
        """Length in months for month-based units, None for day/week."""
        if self.unit == IntervalUnit.MONTH:
            return self.count
        if self.unit == IntervalUnit.QUARTER:
            return 3 * self.count
        if self.unit == IntervalUnit.YEAR:
            return 12 * self.count
        return None

    def days(self) -> int | None:
        if self.unit == IntervalUnit.DAY:
            return self.count
        if self.unit == IntervalUnit.WEEK:
            return 7 * self.count
        return None


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved by whole months, its day clamped to the target month's last day."""
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))


def add_interval(anchor: date, interval: Interval, times: int = 1) -> date:
    """`anchor + times * interval` (times may be negative)."""
    months = interval.months()
    if months is not None:
        return add_months(anchor, months * times)
    return anchor + timedelta(days=_fixed_days(interval) * times)


def _fixed_days(interval: Interval) -> int:
    days = interval.days()
    if days is None:
        raise ValueError(f"{interval.unit} is not a fixed number of days")
    return days


def period_start(anchor: date, interval: Interval, k: int) -> date:
    return add_interval(anchor, interval, k)


def period_at(anchor: date, interval: Interval, k: int) -> Period:
    """The k-th period of the sequence anchored at `anchor` (k=0 starts on the anchor)."""
    return Period(add_interval(anchor, interval, k), add_interval(anchor, interval, k + 1))


def period_index(anchor: date, interval: Interval, day: date) -> int:
    """k such that `day` falls in period k (negative before the anchor)."""
    days = interval.days()
    if days is not None:
        return (day - anchor).days // days
    months = interval.months() or 0
    k = ((day.year - anchor.year) * 12 + day.month - anchor.month) // months
    # The month estimate can be one too high (clamped day) or too low; settle it exactly.
    while add_interval(anchor, interval, k) > day:
        k -= 1
    while add_interval(anchor, interval, k + 1) <= day:
        k += 1
    return k


def period_containing(anchor: date, interval: Interval, day: date) -> Period:
    return period_at(anchor, interval, period_index(anchor, interval, day))


def days_between(start: date, end: date) -> int:
    return (end - start).days
