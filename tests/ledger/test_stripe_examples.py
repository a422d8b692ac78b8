"""Stripe's published Revenue Recognition examples (daily recognition), exactly.

The invoices, payments, refunds and credit notes are booked through the posting services with
the accounts DESIGN.md names, as billing will book them; recognition runs once a day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from billing.ledger.models import AccountCode as A
from billing.ledger.models import JournalEntry, RecognitionReduction
from billing.ledger.postings import post_invoice_finalized, post_payment
from billing.ledger.recognition import (
    recognition_reduce,
    recognition_run,
    recognition_schedule_create,
)
from billing.ledger.reports import deferred_revenue_waterfall, ledger_check, revenue_by_month

from .conftest import days, lines_of

pytestmark = pytest.mark.django_db

D = Decimal


def _monthly_revenue(year: int = 2026) -> dict[int, tuple[Decimal, Decimal]]:
    """{month: (recognized, refunds_and_credits)} in USD."""
    return {
        r.month.month: (r.recognized, r.refunds_and_credits)
        for r in revenue_by_month(currency="USD", start=date(year, 1, 1), end=date(year, 12, 31))
    }


def _invoice(line_id: str, amount: Decimal, start: date, end: date) -> None:
    post_invoice_finalized(
        key=f"invoice:{line_id}:finalized",
        currency="USD",
        effective_date=start,
        receivable=amount,
        deferred=amount,
        source_id=line_id,
        party="customer:1",
    )


def _run_daily(start: date, end: date) -> None:
    for day in days(start, end):
        recognition_run(day=day)


def test_monthly_31_usd_from_january_15_recognizes_17_in_january_and_14_in_february(
    balance: Callable[..., Decimal],
) -> None:
    # given a 31 USD monthly line for Jan 15 - Feb 15, invoiced and paid on Jan 15
    _invoice("1", D("31.00"), date(2026, 1, 15), date(2026, 2, 15))
    recognition_schedule_create(
        source_id="1",
        currency="USD",
        amount=D("31.00"),
        service_start=date(2026, 1, 15),
        service_end=date(2026, 2, 15),
    )
    post_payment(
        key="payment:1",
        currency="USD",
        effective_date=date(2026, 1, 15),
        amount=D("31.00"),
        source_id="p1",
        party="customer:1",
    )

    # when recognition runs every day through March
    _run_daily(date(2026, 1, 15), date(2026, 3, 31))

    # then
    assert _monthly_revenue() == {1: (D("17.00"), D("0")), 2: (D("14.00"), D("0"))}
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert balance(A.SUBSCRIPTION_REVENUE) == D("31.00")
    assert balance(A.CASH) == D("31.00")
    assert balance(A.ACCOUNTS_RECEIVABLE, party="customer:1") == D("0")
    # one entry per day of service, none after the period ended
    assert JournalEntry.objects.filter(source_type="recognition").count() == 31
    assert ledger_check().ok


def test_annual_365_usd_recognizes_31_28_31_and_defers_334_in_january(
    balance: Callable[..., Decimal],
) -> None:
    # given a 365 USD annual line from Jan 1, 2026 (365 days)
    _invoice("2", D("365.00"), date(2026, 1, 1), date(2027, 1, 1))
    recognition_schedule_create(
        source_id="2",
        currency="USD",
        amount=D("365.00"),
        service_start=date(2026, 1, 1),
        service_end=date(2027, 1, 1),
    )

    # when recognition runs every day through March
    _run_daily(date(2026, 1, 1), date(2026, 3, 31))

    # then
    assert _monthly_revenue() == {
        1: (D("31.00"), D("0")),
        2: (D("28.00"), D("0")),
        3: (D("31.00"), D("0")),
    }
    january, february, march = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 1, 1), end=date(2026, 3, 1)
    )
    assert (january.opening, january.billed, january.recognized) == (
        D("0"),
        D("365.00"),
        D("31.00"),
    )
    assert january.closing - january.opening == D("334.00")
    assert (february.closing, march.closing) == (D("306.00"), D("275.00"))
    assert balance(A.DEFERRED_REVENUE) == D("275.00")


def test_quarter_90_usd_fully_refunded_on_february_1(balance: Callable[..., Decimal]) -> None:
    # given 90 USD for Jan 1 - Apr 1 (90 days), invoiced and paid on Jan 1
    _invoice("3", D("90.00"), date(2026, 1, 1), date(2026, 4, 1))
    schedule = recognition_schedule_create(
        source_id="3",
        currency="USD",
        amount=D("90.00"),
        service_start=date(2026, 1, 1),
        service_end=date(2026, 4, 1),
    )
    post_payment(
        key="payment:3",
        currency="USD",
        effective_date=date(2026, 1, 1),
        amount=D("90.00"),
        source_id="p3",
        party="customer:1",
    )
    _run_daily(date(2026, 1, 1), date(2026, 1, 31))
    assert balance(A.CASH) == D("90.00")

    # when it is fully refunded on Feb 1, and recognition goes on running
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("90.00"),
        effective_date=date(2026, 2, 1),
        kind=RecognitionReduction.Kind.REFUND,
        counterparty=A.CASH,
        idempotency_key="refund:3",
        source_id="r3",
    )
    _run_daily(date(2026, 2, 1), date(2026, 4, 30))

    # then January keeps its 31, the 31 go to contra-revenue and the 59 deferred are reversed
    assert (reduction.recognized_share, reduction.deferred_share) == (D("31.00"), D("59.00"))
    assert lines_of(reduction.entry) == [
        ("debit", A.REFUNDS_AND_CREDITS, D("31.0000")),
        ("debit", A.DEFERRED_REVENUE, D("59.0000")),
        ("credit", A.CASH, D("90.0000")),
    ]
    assert reduction.entry.effective_date == date(2026, 2, 1)
    assert _monthly_revenue() == {1: (D("31.00"), D("0")), 2: (D("0"), D("31.00"))}
    assert balance(A.CASH) == D("0")
    assert balance(A.DEFERRED_REVENUE) == D("0")
    # nothing was recognized after the refund
    assert not JournalEntry.objects.filter(
        source_type="recognition", effective_date__gte=date(2026, 2, 1)
    ).exists()
    assert ledger_check().ok


def test_quarter_120_usd_with_a_30_usd_credit_note_before_payment(
    balance: Callable[..., Decimal],
) -> None:
    # given 120 USD for Jan 1 - Apr 1 (90 days), invoiced on Jan 1
    _invoice("4", D("120.00"), date(2026, 1, 1), date(2026, 4, 1))
    schedule = recognition_schedule_create(
        source_id="4",
        currency="USD",
        amount=D("120.00"),
        service_start=date(2026, 1, 1),
        service_end=date(2026, 4, 1),
    )

    # when a 30 USD credit note takes 30 off what is due before any recognition, the customer
    # pays the 90 left, and recognition runs every day
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("30.00"),
        effective_date=date(2026, 1, 1),
        kind=RecognitionReduction.Kind.CREDIT_NOTE,
        counterparty=A.ACCOUNTS_RECEIVABLE,
        party="customer:1",
        idempotency_key="credit_note:4",
    )
    post_payment(
        key="payment:4",
        currency="USD",
        effective_date=date(2026, 1, 1),
        amount=D("90.00"),
        source_id="p4",
        party="customer:1",
    )
    _run_daily(date(2026, 1, 1), date(2026, 4, 30))

    # then the schedule is 90 over 90 days
    assert (reduction.recognized_share, reduction.deferred_share) == (D("0"), D("30.00"))
    assert lines_of(reduction.entry) == [
        ("debit", A.DEFERRED_REVENUE, D("30.0000")),
        ("credit", A.ACCOUNTS_RECEIVABLE, D("30.0000")),
    ]
    assert _monthly_revenue() == {
        1: (D("31.00"), D("0")),
        2: (D("28.00"), D("0")),
        3: (D("31.00"), D("0")),
    }
    assert balance(A.ACCOUNTS_RECEIVABLE, party="customer:1") == D("0")
    assert balance(A.CASH) == D("90.00")
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert balance(A.REFUNDS_AND_CREDITS) == D("0")
    assert ledger_check().ok
