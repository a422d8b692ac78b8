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
from billing.ledger.reports import deferred_revenue_waterfall, revenue_by_month
from billing.models import Invoice, Payment, PaymentMethod
from billing.selectors import ledger_reconciliation
from billing.services import credit_note_create, payment_record_offline, refund_create
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
