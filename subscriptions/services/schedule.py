"""The pure arithmetic of a subscription's time and price: no database, no clock.

A subscription bills along a *cadence*: period k starts at `anchor + k x interval`, computed
from the anchor every time (core.periods' rule), on the billing day of the month when calendar
billing sets one (an anchor clamped to Feb 28 for day 31 goes back to Mar 31). Its plan runs
through *spans* (one per phase occurrence: trial, intro price, fixed term, evergreen), each
with its own unit price. Billing a date range cuts it at period boundaries and at span
boundaries into *slices*; a slice that is not a whole period is prorated by its real days over
the real days of the full period that contains it.

Be careful here: every invoice line of the lifecycle is computed from these few functions.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from core.money import round_money
from core.periods import Interval, Period, add_interval


@dataclass(frozen=True, slots=True)
class Cadence:
    """Billing periods anchored at `anchor`; `day` is the day of the month they start on."""

    anchor: date
    interval: Interval
    day: int | None = None  # calendar billing day; None: the anchor's own day

    def start(self, k: int) -> date:
        """`anchor + k x interval`, the day of the month clamped to the month's last day."""
        months = self.interval.months()
        if months is None:
            return self.anchor + timedelta(days=_fixed_days(self.interval) * k)
        month_index = self.anchor.month - 1 + months * k
        year, month = self.anchor.year + month_index // 12, month_index % 12 + 1
        day = self.day or self.anchor.day
        return date(year, month, min(day, calendar.monthrange(year, month)[1]))

    def period(self, k: int) -> Period:
        return Period(self.start(k), self.start(k + 1))

    def index(self, day: date) -> int:
        """k such that `day` falls in period k (negative before the anchor)."""
        fixed = self.interval.days()
        if fixed is not None:
            return (day - self.anchor).days // fixed
        months = self.interval.months() or 1
        k = ((day.year - self.anchor.year) * 12 + day.month - self.anchor.month) // months
        # The month estimate is off by one around clamped days; settle it exactly.
        while self.start(k) > day:
            k -= 1
        while self.start(k + 1) <= day:
            k += 1
        return k

    def containing(self, day: date) -> Period:
        return self.period(self.index(day))

    def next_start_after(self, day: date) -> date:
        """The first period start strictly after `day`."""
        return self.containing(day).end


def _fixed_days(interval: Interval) -> int:
    days = interval.days()
    if days is None:
        raise ValueError(f"{interval.unit} is not a fixed number of days")
    return days


def calendar_anchor(paid_start: date, billing_day: int) -> date:
    """The first date on or after `paid_start` that falls on the billing day (clamped)."""
    year, month = paid_start.year, paid_start.month
    candidate = date(year, month, min(billing_day, calendar.monthrange(year, month)[1]))
    if candidate >= paid_start:
        return candidate
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, min(billing_day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class Span:
    """One phase occurrence: from `start` to `end` (exclusive; None: open-ended) at a price."""

    start: date
    end: date | None
    unit_amount: Decimal  # per unit per full period
    billable: bool = True  # a trial is not
    phase_id: int | None = None
    price_id: int | None = None
    label: str = ""

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True, slots=True)
class Slice:
    """A piece of a billing period at one price: [start, end) inside `period`."""

    start: date
    end: date
    period: Period
    span: Span

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def is_full_period(self) -> bool:
        return self.start == self.period.start and self.end == self.period.end

    @property
    def proration(self) -> tuple[int, int] | None:
        """(days, period days) for a partial period; None for a whole one."""
        return None if self.is_full_period else (self.days, self.period.days)


def slices(cadence: Cadence, spans: Sequence[Span], start: date, end: date) -> list[Slice]:
    """Cut [start, end) at period and span boundaries; days no span covers are not billed.

    Non-billable spans (trials) yield no slice: their days cost nothing.
    """
    out: list[Slice] = []
    cursor = start
    while cursor < end:
        span = next((s for s in spans if cursor in s), None)
        if span is None:
            # Past the end of a fixed term that does not renew: nothing more to bill.
            following = [s.start for s in spans if s.start > cursor]
            if not following:
                break
            cursor = min(min(following), end)
            continue
        period = cadence.containing(cursor)
        stop = min(end, period.end, span.end or end)
        if span.billable:
            out.append(Slice(cursor, stop, period, span))
        cursor = stop
    return out


def slice_amount(piece: Slice, quantity: int | Decimal, currency: str) -> Decimal:
    """What billing will charge for a slice: rounded once, half up (the contract's rule)."""
    gross = Decimal(quantity) * piece.span.unit_amount
    if piece.proration is not None:
        days, period_days = piece.proration
        gross = gross * days / period_days
    return round_money(gross, currency)


@dataclass(frozen=True, slots=True)
class PhaseStep:
    """A phase to lay out in time: its length (None: open-ended) and its price."""

    duration: Interval | None
    unit_amount: Decimal
    billable: bool = True
    phase_id: int | None = None
    price_id: int | None = None
    label: str = ""


def spans_from_phases(
    steps: Sequence[PhaseStep], start: date, *, last_renews: bool = False
) -> list[Span]:
    """Lay phases end to end from `start`.

    The last phase is open-ended when it has no duration or renews (a renewing term goes on at
    the same price); a fixed term that does not renew ends the spans.
    """
    out: list[Span] = []
    cursor = start
    for position, step in enumerate(steps):
        end = None if step.duration is None else add_interval(cursor, step.duration)
        if position == len(steps) - 1 and last_renews:
            end = None
        out.append(
            Span(
                start=cursor,
                end=end,
                unit_amount=step.unit_amount,
                billable=step.billable,
                phase_id=step.phase_id,
                price_id=step.price_id,
                label=step.label,
            )
        )
        if end is None:
            break
        cursor = end
    return out


def monthly_normalized(amount: Decimal, interval: Interval) -> Decimal:
    """The price per month: amount / months, or for day and week intervals the price per day
    times 365 / 12 (an average month). Unrounded: it only compares plans."""
    months = interval.months()
    if months is not None:
        return Decimal(amount) / months
    return Decimal(amount) * 365 / (12 * _fixed_days(interval))


def allocate(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights`, each share rounded to the currency's minor
    unit, the remainder on the last share, so the shares add up to `total` exactly."""
    if not weights:
        return []
    weight_sum = sum(weights, Decimal(0))
    shares: list[Decimal] = []
    for weight in weights[:-1]:
        share = total * weight / weight_sum if weight_sum else total / len(weights)
        shares.append(round_money(share, currency))
    shares.append(total - sum(shares, Decimal(0)))
    return shares
