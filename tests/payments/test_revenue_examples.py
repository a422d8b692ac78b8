"""Stripe's published Revenue Recognition examples, through billing (invoices with service
periods, payments, refunds, credit notes) and the daily recognition run on the platform clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.ledger.models import AccountCode as A
from billing.ledger.recognition import recognition_daily_work
from billing.ledger.reports import (
    deferred_revenue_reconciliation,
    deferred_revenue_waterfall,
    revenue_by_month,
)
from billing.models import Invoice, Payment, PaymentMethod
from billing.selectors import ledger_reconciliation
from billing.services import (
    credit_note_create,
    invoice_void,
    payment_record_offline,
    refund_create,
)
from customers.models import Customer

from .conftest import STAFF, VISA, line

pytestmark = pytest.mark.django_db

D = Decimal
Bill = Callable[..., Invoice]
Balance = Callable[..., Decimal]


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def _live_until(clock: Any, start: date, end: date) -> None:
    """Each day from `start` to `end`: the clock moves to it and the daily recognition runs
    (at midnight starting a day it recognizes the day that just ended)."""
    day = start
    while day <= end:
        clock(_at(day))
        recognition_daily_work(day)
        day += timedelta(days=1)


def _revenue() -> dict[int, tuple[Decimal, Decimal]]:
    """{month: (recognized, refunds and credits)} in USD for 2026."""
    return {
        row.month.month: (row.recognized, row.refunds_and_credits)
        for row in revenue_by_month(currency="USD", start=date(2026, 1, 1), end=date(2026, 12, 31))
    }


def _paying_customer(
    make_customer: Callable[..., Customer], save_card: Callable[..., PaymentMethod]
) -> Customer:
    customer = make_customer()
    save_card(customer, VISA)
    return customer


def test_31_usd_monthly_from_january_15_recognizes_17_then_14(
    clock: Any, make_customer: Callable[..., Customer], save_card: Any, bill: Bill
) -> None:
    clock(_at(date(2026, 1, 15)))
    customer = _paying_customer(make_customer, save_card)
    invoice = bill(
        customer,
        line("Monthly", "31.00", period_start=date(2026, 1, 15), period_end=date(2026, 2, 15)),
    )
    assert invoice.status == "paid"

    _live_until(clock, date(2026, 1, 16), date(2026, 4, 1))

    assert _revenue() == {1: (D("17.00"), D("0")), 2: (D("14.00"), D("0"))}
    assert ledger_reconciliation().mismatches == []


def test_365_usd_annual_from_january_1_recognizes_a_dollar_a_day(
    clock: Any, make_customer: Callable[..., Customer], save_card: Any, bill: Bill
) -> None:
    clock(_at(date(2026, 1, 1)))
    customer = _paying_customer(make_customer, save_card)
    bill(
        customer,
        line("Annual", "365.00", period_start=date(2026, 1, 1), period_end=date(2027, 1, 1)),
    )

    _live_until(clock, date(2026, 1, 2), date(2026, 4, 1))

    revenue = _revenue()
    assert [revenue[month][0] for month in (1, 2, 3)] == [D("31.00"), D("28.00"), D("31.00")]
    january = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 1, 1), end=date(2026, 1, 31)
    )[0]
    assert (january.billed, january.recognized, january.closing) == (
        D("365.00"),
        D("31.00"),
        D("334.00"),
    )


def test_90_usd_quarterly_fully_refunded_on_february_1(
    clock: Any,
    make_customer: Callable[..., Customer],
    save_card: Any,
    bill: Bill,
    balance: Balance,
) -> None:
    clock(_at(date(2026, 1, 1)))
    customer = _paying_customer(make_customer, save_card)
    bill(
        customer,
        line("Quarter", "90.00", period_start=date(2026, 1, 1), period_end=date(2026, 4, 1)),
    )
    assert balance(A.CASH) == D("90.00")
    _live_until(clock, date(2026, 1, 2), date(2026, 2, 1))

    refund_create(payment=Payment.objects.get(), actor=STAFF)
    _live_until(clock, date(2026, 2, 2), date(2026, 5, 1))

    # Revenue Jan 31; on Feb 1 the 31 earned go to refunds (contra-revenue) and the 59 still
    # deferred are reversed; cash +90 then -90.
    assert _revenue() == {1: (D("31.00"), D("0")), 2: (D("0"), D("31.00"))}
    february = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 2, 1), end=date(2026, 2, 28)
    )[0]
    assert (february.opening, february.reversed, february.closing) == (
        D("59.00"),
        D("59.00"),
        D("0.00"),
    )
    assert balance(A.CASH) == D("0")
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert ledger_reconciliation().mismatches == []


def test_120_usd_quarterly_with_a_30_usd_credit_note_before_payment(
    clock: Any, make_customer: Callable[..., Customer], bill: Bill, balance: Balance
) -> None:
    clock(_at(date(2026, 1, 1)))
    customer = make_customer(autocharge=False)
    invoice = bill(
        customer,
        line("Quarter", "120.00", period_start=date(2026, 1, 1), period_end=date(2026, 4, 1)),
    )
    credit_note_create(invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=D("30"))
    invoice.refresh_from_db()
    assert invoice.amount_due == D("90.00")
    payment_record_offline(
        invoice=invoice,
        amount=D("90.00"),
        method="bank_transfer",
        reference="",
        received_on=date(2026, 1, 1),
        actor=STAFF,
    )

    _live_until(clock, date(2026, 1, 2), date(2026, 5, 1))

    assert _revenue() == {
        1: (D("31.00"), D("0")),
        2: (D("28.00"), D("0")),
        3: (D("31.00"), D("0")),
    }
    assert balance(A.CASH) == D("90.00")
    assert ledger_reconciliation().mismatches == []


def _bill_then_change(
    clock: Any,
    bill: Bill,
    customer: Customer,
    *,
    old: str,
    new: str,
    start: date,
    change_on: date,
    end: date,
) -> Invoice:
    """`old` billed for [start, end) on `start` (the clock's day), the days lived up to
    `change_on`, then a change to `new` billed: the unused time on the old price given back and
    the remaining time on the new one, both over [change_on, end)."""
    bill(customer, line("Plan", old, period_start=start, period_end=end))
    _live_until(clock, start + timedelta(days=1), change_on)
    proration = ((end - change_on).days, (end - start).days)
    return bill(
        customer,
        line(
            "Unused time",
            old,
            kind="proration_credit",
            period_start=change_on,
            period_end=end,
            proration=proration,
        ),
        line(
            "Remaining time",
            new,
            kind="proration_charge",
            period_start=change_on,
            period_end=end,
            proration=proration,
        ),
    )


def test_upgrade_on_april_21_recognizes_the_unused_time_back_over_its_own_days(
    clock: Any,
    make_customer: Callable[..., Customer],
    save_card: Any,
    bill: Bill,
    balance: Balance,
) -> None:
    """90 USD monthly from April 1, upgraded to 120 USD on April 21: the -30 of unused time
    and the +40 of remaining time are both recognized over April 21-30, so April earns 60 on
    the old price and 40 on the new, and nothing goes to refunds and credits."""
    clock(_at(date(2026, 4, 1)))
    customer = _paying_customer(make_customer, save_card)
    upgrade = _bill_then_change(
        clock,
        bill,
        customer,
        old="90.00",
        new="120.00",
        start=date(2026, 4, 1),
        change_on=date(2026, 4, 21),
        end=date(2026, 5, 1),
    )
    assert [line.total for line in upgrade.lines.order_by("position")] == [D("-30.00"), D("40.00")]
    assert upgrade.status == "paid"
    # Right after the upgrade: 10 days of the old price still deferred, less the 30 given
    # back, plus the 40 of the new price.
    assert balance(A.DEFERRED_REVENUE) == D("40.00")

    _live_until(clock, date(2026, 4, 22), date(2026, 5, 2))

    assert _revenue() == {4: (D("100.00"), D("0"))}
    april = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 4, 1), end=date(2026, 4, 30)
    )[0]
    assert (april.billed, april.recognized, april.reversed, april.closing) == (
        D("130.00"),
        D("100.00"),
        D("30.00"),
        D("0.00"),
    )
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert balance(A.REFUNDS_AND_CREDITS) == D("0")
    assert ledger_reconciliation().mismatches == []
    assert all(row.difference == 0 for row in deferred_revenue_reconciliation())


def test_annual_upgrade_on_july_1_moves_revenue_month_by_month_not_at_once(
    clock: Any, make_customer: Callable[..., Customer], save_card: Any, bill: Bill
) -> None:
    """365 USD a year from January 1, upgraded to 730 on July 1 (184 days left): July and
    August earn 62 each (the old 31 a month given back day by day, the new 62 earned), not
    the whole 184 of unused time taken off July."""
    clock(_at(date(2026, 1, 1)))
    customer = _paying_customer(make_customer, save_card)
    upgrade = _bill_then_change(
        clock,
        bill,
        customer,
        old="365.00",
        new="730.00",
        start=date(2026, 1, 1),
        change_on=date(2026, 7, 1),
        end=date(2027, 1, 1),
    )
    assert [line.total for line in upgrade.lines.order_by("position")] == [
        D("-184.00"),
        D("368.00"),
    ]

    _live_until(clock, date(2026, 7, 2), date(2026, 9, 1))

    revenue = _revenue()
    assert [revenue[month] for month in range(1, 9)] == [
        (D("31.00"), D("0")),
        (D("28.00"), D("0")),
        (D("31.00"), D("0")),
        (D("30.00"), D("0")),
        (D("31.00"), D("0")),
        (D("30.00"), D("0")),
        (D("62.00"), D("0")),
        (D("62.00"), D("0")),
    ]
    assert ledger_reconciliation().mismatches == []
    assert all(row.difference == 0 for row in deferred_revenue_reconciliation())


def test_voiding_an_upgrade_invoice_takes_back_both_lines_as_far_as_they_were_recognized(
    clock: Any,
    make_customer: Callable[..., Customer],
    bill: Bill,
    balance: Balance,
) -> None:
    """The upgrade invoice of April 21, unpaid, is voided on April 25: the four days of the
    credit (-12) and of the charge (+16) already recognized go to refunds and credits, the
    rest leaves deferred revenue, and neither line recognizes anything after."""
    clock(_at(date(2026, 4, 1)))
    customer = make_customer(autocharge=False)
    upgrade = _bill_then_change(
        clock,
        bill,
        customer,
        old="90.00",
        new="120.00",
        start=date(2026, 4, 1),
        change_on=date(2026, 4, 21),
        end=date(2026, 5, 1),
    )
    _live_until(clock, date(2026, 4, 22), date(2026, 4, 25))

    invoice_void(invoice=upgrade, actor=STAFF)
    _live_until(clock, date(2026, 4, 26), date(2026, 5, 2))

    # Recognized: the old 90 in full, -12 and +16 for April 21-24; then 16 - 12 = 4 of it to
    # refunds and credits at the void, so April nets the old price's 90.
    assert _revenue() == {4: (D("94.00"), D("4.00"))}
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert balance(A.ACCOUNTS_RECEIVABLE, customer) == D("90.00")
    assert ledger_reconciliation().mismatches == []
    assert all(row.difference == 0 for row in deferred_revenue_reconciliation())


def test_downgrade_on_april_21_gives_more_back_each_day_than_the_new_price_earns(
    clock: Any,
    make_customer: Callable[..., Customer],
    save_card: Any,
    bill: Bill,
    balance: Balance,
) -> None:
    """120 USD monthly from April 1, downgraded to 90 on April 21: -40 of unused time and +30
    of remaining time over April 21-30, so each of those days gives back 1 net. April earns
    80 + 30 = 110, the waterfall shows the 40 taken out of deferred revenue as reversed (not
    as billed), and the -10 invoice becomes customer credit."""
    clock(_at(date(2026, 4, 1)))
    customer = _paying_customer(make_customer, save_card)
    downgrade = _bill_then_change(
        clock,
        bill,
        customer,
        old="120.00",
        new="90.00",
        start=date(2026, 4, 1),
        change_on=date(2026, 4, 21),
        end=date(2026, 5, 1),
    )
    assert downgrade.total == D("-10.00")

    _live_until(clock, date(2026, 4, 22), date(2026, 5, 2))

    assert _revenue() == {4: (D("110.00"), D("0"))}
    april = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 4, 1), end=date(2026, 4, 30)
    )[0]
    assert (april.billed, april.recognized, april.reversed, april.closing) == (
        D("150.00"),
        D("110.00"),
        D("40.00"),
        D("0.00"),
    )
    assert balance(A.CUSTOMER_CREDIT, customer) == D("10.00")
    assert ledger_reconciliation().mismatches == []
    assert all(row.difference == 0 for row in deferred_revenue_reconciliation())
