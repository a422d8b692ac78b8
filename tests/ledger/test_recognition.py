"""Revenue recognition: schedules, the daily run (idempotent, catching up), reductions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.ledger.models import AccountCode as A
from billing.ledger.models import JournalEntry, RecognitionReduction, RecognitionSchedule
from billing.ledger.postings import post_invoice_finalized
from billing.ledger.recognition import (
    recognition_reduce,
    recognition_run,
    recognition_schedule_create,
    recognition_target,
)
from billing.ledger.reports import deferred_revenue_reconciliation, revenue_by_month
from billing.ledger.services import Posting, ledger_post
from core import services as core_services
from core.actors import SYSTEM
from core.errors import ConflictError, ValidationError

from .conftest import days, lines_of

pytestmark = pytest.mark.django_db

D = Decimal
JAN_1 = date(2026, 1, 1)


def _scheduled(
    source_id: str,
    amount: str,
    start: date = JAN_1,
    end: date = date(2026, 2, 1),
    currency: str = "USD",
) -> RecognitionSchedule:
    """A line invoiced (deferred) and scheduled, as billing will do at finalization."""
    post_invoice_finalized(
        key=f"invoice:{source_id}",
        currency=currency,
        effective_date=start,
        receivable=D(amount),
        deferred=D(amount),
        source_id=source_id,
    )
    return recognition_schedule_create(
        source_id=source_id,
        currency=currency,
        amount=D(amount),
        service_start=start,
        service_end=end,
    )


def _recognition_entries() -> list[tuple[date, str, Decimal]]:
    """(effective date, currency, revenue credited) of every recognition entry."""
    return [
        (e.effective_date, e.lines.get(side="credit").currency, e.lines.get(side="credit").amount)
        for e in JournalEntry.objects.filter(source_type="recognition").order_by("effective_date")
    ]


def test_the_target_is_cumulative_and_rounded_half_up() -> None:
    assert recognition_target(D("10.00"), 1, 3, "USD") == D("3.33")
    assert recognition_target(D("10.00"), 2, 3, "USD") == D("6.67")
    assert recognition_target(D("10.00"), 3, 3, "USD") == D("10.00")
    assert recognition_target(D("0.05"), 1, 2, "USD") == D("0.03")  # 0.025 rounds up
    assert recognition_target(D("1"), 1, 2, "JPY") == D("1")
    assert recognition_target(D("1.000"), 1, 3, "KWD") == D("0.333")
    assert recognition_target(D("7"), 0, 31, "USD") == D("0.00")


def test_a_negative_target_mirrors_the_positive_one() -> None:
    assert recognition_target(D("-10.00"), 1, 3, "USD") == D("-3.33")
    assert recognition_target(D("-10.00"), 2, 3, "USD") == D("-6.67")
    assert recognition_target(D("-10.00"), 3, 3, "USD") == D("-10.00")
    assert recognition_target(D("-0.05"), 1, 2, "USD") == D("-0.03")  # half away from zero


def test_a_schedule_is_created_once_per_source() -> None:
    first = recognition_schedule_create(
        source_id=9,
        currency="usd",
        amount=D("31"),
        service_start=JAN_1,
        service_end=date(2026, 2, 1),
    )
    again = recognition_schedule_create(
        source_id="9",
        currency="USD",
        amount=D("31.00"),
        service_start=JAN_1,
        service_end=date(2026, 2, 1),
    )
    assert again.pk == first.pk
    assert (first.currency, first.amount, first.recognized_through) == (
        "USD",
        D("31.00"),
        date(2025, 12, 31),
    )
    with pytest.raises(ConflictError) as refused:
        recognition_schedule_create(
            source_id=9,
            currency="USD",
            amount=D("32"),
            service_start=JAN_1,
            service_end=date(2026, 2, 1),
        )
    assert refused.value.code == "ledger_schedule_exists"
    assert RecognitionSchedule.objects.count() == 1


@pytest.mark.parametrize(
    ("amount", "end", "param"),
    [
        (D("0"), date(2026, 2, 1), "amount"),
        (D("-1.001"), date(2026, 2, 1), "amount"),
        (D("1.001"), date(2026, 2, 1), "amount"),
        (D("10"), JAN_1, "service_end"),
    ],
)
def test_invalid_schedules_are_refused(amount: Decimal, end: date, param: str) -> None:
    with pytest.raises(ValidationError) as refused:
        recognition_schedule_create(
            source_id=1, currency="USD", amount=amount, service_start=JAN_1, service_end=end
        )
    assert refused.value.param == param
    assert not RecognitionSchedule.objects.exists()


def test_a_run_is_idempotent_per_day(balance: Callable[..., Decimal]) -> None:
    _scheduled("1", "31.00")
    first = recognition_run(day=JAN_1)
    again = recognition_run(day=JAN_1)
    assert (first.entries, first.schedules) == (1, 1)
    assert (again.entries, again.schedules) == (0, 0)
    assert _recognition_entries() == [(JAN_1, "USD", D("1.0000"))]
    assert balance(A.SUBSCRIPTION_REVENUE) == D("1.00")


def test_a_late_run_catches_up_each_missed_day_on_its_own_date() -> None:
    # given a 10-day schedule and no run for a week
    _scheduled("1", "10.00", end=date(2026, 1, 11))

    # when the run for Jan 7 comes
    result = recognition_run(day=date(2026, 1, 7))

    # then each day has its entry, in its own month
    assert (result.entries, result.schedules) == (7, 1)
    assert _recognition_entries() == [
        (d, "USD", D("1.0000")) for d in days(JAN_1, date(2026, 1, 7))
    ]
    assert RecognitionSchedule.objects.get().recognized_through == date(2026, 1, 7)


def test_one_entry_per_currency_and_day_for_all_schedules() -> None:
    _scheduled("1", "31.00")
    _scheduled("2", "62.00")
    _scheduled("3", "3100", currency="JPY")
    recognition_run(day=JAN_1)
    assert sorted(_recognition_entries()) == [
        (JAN_1, "JPY", D("100.0000")),
        (JAN_1, "USD", D("3.0000")),
    ]
    assert JournalEntry.objects.get(idempotency_key="recognition:USD:2026-01-01").lines.count() == 2


def test_a_run_costs_the_same_queries_for_five_schedules_or_fifty() -> None:
    # given five schedules, run once (the accounts exist)
    for n in range(5):
        _scheduled(f"a{n}", "31.00")
    recognition_run(day=JAN_1)
    with CaptureQueriesContext(connection) as five:
        recognition_run(day=date(2026, 1, 2))
    for n in range(45):
        _scheduled(f"b{n}", "31.00", start=date(2026, 1, 3))
    with CaptureQueriesContext(connection) as fifty:
        recognition_run(day=date(2026, 1, 3))
    assert len(five) == len(fifty)
    assert RecognitionSchedule.objects.filter(recognized_through=date(2026, 1, 3)).count() == 50


def test_a_schedule_created_after_its_days_were_run_is_caught_up_on_the_next_open_day() -> None:
    # given the days up to Jan 10 already run for another schedule
    _scheduled("1", "31.00")
    for day in days(JAN_1, date(2026, 1, 10)):
        recognition_run(day=day)

    # when a line for January is invoiced late, on Jan 11, and the day is run
    _scheduled("2", "62.00")
    recognition_run(day=date(2026, 1, 11))

    # then the entries already booked stay as they were and Jan 11 carries the catch-up
    entries = _recognition_entries()
    assert entries[:10] == [(d, "USD", D("1.0000")) for d in days(JAN_1, date(2026, 1, 10))]
    assert entries[10] == (date(2026, 1, 11), "USD", D("1.00") + D("22.0000"))


def test_the_test_clock_recognizes_each_day_that_ends(
    clock: Callable[[datetime], datetime],
) -> None:
    # given a schedule from Jan 1 and the clock at Jan 1, noon
    _scheduled("1", "31.00")
    clock(datetime(2026, 1, 1, 12, tzinfo=UTC))

    # when the clock moves to Jan 4, noon
    result = core_services.test_clock_advance(to=datetime(2026, 1, 4, 12, tzinfo=UTC), actor=SYSTEM)

    # then Jan 1, 2 and 3 are recognized (Jan 4 is not over)
    assert _recognition_entries() == [
        (d, "USD", D("1.0000")) for d in days(JAN_1, date(2026, 1, 3))
    ]
    assert [day["work"].get("revenue_recognition") for day in result["days"]] == [
        {"entries": 1, "schedules": 1}
    ] * 3


def test_a_partial_refund_reduces_the_rest_of_the_schedule_proportionally(
    balance: Callable[..., Decimal],
) -> None:
    # given 90 USD over 90 days, 31 recognized in January
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))
    for day in days(JAN_1, date(2026, 1, 31)):
        recognition_run(day=day)

    # when a third of it (30 USD + 3 USD tax) is refunded on Feb 1
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("30.00"),
        tax=D("3.00"),
        effective_date=date(2026, 2, 1),
        kind=RecognitionReduction.Kind.REFUND,
        counterparty=A.CASH,
        idempotency_key="refund:1",
    )
    for day in days(date(2026, 2, 1), date(2026, 3, 31)):
        recognition_run(day=day)

    # then a third of the 31 recognized goes to contra-revenue, the rest from deferred, and the
    # schedule goes on at two thirds of its rate
    assert (reduction.recognized_share, reduction.deferred_share) == (D("10.33"), D("19.67"))
    assert lines_of(reduction.entry) == [
        ("debit", A.REFUNDS_AND_CREDITS, D("10.3300")),
        ("debit", A.DEFERRED_REVENUE, D("19.6700")),
        ("debit", A.TAX_PAYABLE, D("3.0000")),
        ("credit", A.CASH, D("33.0000")),
    ]
    months = {r.month.month: (r.recognized, r.refunds_and_credits) for r in revenue_by_month()}
    # 60 over 90 days: 20.67 by Jan 31 (kept: 31 - 10.33), 39.33 by Feb 28, 60 by Mar 31
    assert months == {1: (D("31.00"), D("0")), 2: (D("18.66"), D("10.33")), 3: (D("20.67"), D("0"))}
    assert balance(A.SUBSCRIPTION_REVENUE) - balance(A.REFUNDS_AND_CREDITS) == D("60.00")
    assert balance(A.DEFERRED_REVENUE) == D("0")
    schedule.refresh_from_db()
    assert (schedule.reduced_amount, schedule.recognized_amount) == (D("30.00"), D("60.00"))


def test_a_reduction_recognizes_the_days_the_run_had_not_reached_yet(
    balance: Callable[..., Decimal],
) -> None:
    # given 90 USD over 90 days and no run at all in January
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))

    # when it is fully refunded on Feb 1
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("90.00"),
        effective_date=date(2026, 2, 1),
        kind=RecognitionReduction.Kind.REFUND,
        counterparty=A.CASH,
        idempotency_key="refund:1",
    )

    # then the same entry recognizes January first, so the split is the same as if it had run
    assert lines_of(reduction.entry) == [
        ("debit", A.DEFERRED_REVENUE, D("31.0000")),
        ("credit", A.SUBSCRIPTION_REVENUE, D("31.0000")),
        ("debit", A.REFUNDS_AND_CREDITS, D("31.0000")),
        ("debit", A.DEFERRED_REVENUE, D("59.0000")),
        ("credit", A.CASH, D("90.0000")),
    ]
    assert balance(A.DEFERRED_REVENUE) == D("0")
    # and nothing is left for the runs
    assert recognition_run(day=date(2026, 4, 30)).entries == 0


def test_a_backdated_reduction_gives_back_revenue_recognized_after_its_date(
    balance: Callable[..., Decimal],
) -> None:
    # given 90 USD over 90 days recognized through Feb 10
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))
    recognition_run(day=date(2026, 2, 10))

    # when a full credit is backdated to Feb 1
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("90.00"),
        effective_date=date(2026, 2, 1),
        counterparty=A.CUSTOMER_CREDIT,
        party="customer:1",
        idempotency_key="credit:1",
    )

    # then Feb 1 - 10 are given back before the split
    assert lines_of(reduction.entry)[:2] == [
        ("debit", A.SUBSCRIPTION_REVENUE, D("10.0000")),
        ("credit", A.DEFERRED_REVENUE, D("10.0000")),
    ]
    assert (reduction.recognized_share, reduction.deferred_share) == (D("31.00"), D("59.00"))
    assert balance(A.CUSTOMER_CREDIT, party="customer:1") == D("90.00")
    assert balance(A.SUBSCRIPTION_REVENUE) - balance(A.REFUNDS_AND_CREDITS) == D("0")


def test_a_reduction_is_idempotent_on_its_key() -> None:
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))
    kwargs = {
        "schedule": schedule,
        "amount": D("30.00"),
        "effective_date": JAN_1,
        "counterparty": A.ACCOUNTS_RECEIVABLE,
        "idempotency_key": "credit_note:1",
    }
    first = recognition_reduce(**kwargs)  # type: ignore[arg-type]
    again = recognition_reduce(**kwargs)  # type: ignore[arg-type]
    assert again.pk == first.pk
    with pytest.raises(ConflictError) as refused:
        recognition_reduce(**{**kwargs, "amount": D("31.00")})  # type: ignore[arg-type]
    assert refused.value.code == "ledger_key_reused"
    schedule.refresh_from_db()
    assert schedule.reduced_amount == D("30.00")
    assert RecognitionReduction.objects.count() == 1


def test_a_reduction_cannot_exceed_what_is_left() -> None:
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))
    recognition_reduce(
        schedule=schedule,
        amount=D("60.00"),
        effective_date=JAN_1,
        counterparty=A.ACCOUNTS_RECEIVABLE,
        idempotency_key="credit_note:1",
    )
    with pytest.raises(ValidationError) as refused:
        recognition_reduce(
            schedule=schedule,
            amount=D("30.01"),
            effective_date=JAN_1,
            counterparty=A.ACCOUNTS_RECEIVABLE,
            idempotency_key="credit_note:2",
        )
    assert refused.value.code == "ledger_reduction_too_large"
    assert RecognitionReduction.objects.count() == 1


def test_a_reduction_after_the_service_ended_is_all_contra_revenue() -> None:
    schedule = _scheduled("1", "31.00")
    recognition_run(day=date(2026, 1, 31))
    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("5.00"),
        effective_date=date(2026, 3, 1),
        counterparty=A.CASH,
        kind=RecognitionReduction.Kind.REFUND,
        idempotency_key="refund:1",
    )
    assert (reduction.recognized_share, reduction.deferred_share) == (D("5.00"), D("0"))


def test_the_schedules_reconcile_with_deferred_revenue() -> None:
    schedule = _scheduled("1", "90.00", end=date(2026, 4, 1))
    _scheduled("2", "3100", currency="JPY")
    recognition_run(day=date(2026, 1, 20))
    recognition_reduce(
        schedule=schedule,
        amount=D("45.00"),
        effective_date=date(2026, 1, 21),
        counterparty=A.ACCOUNTS_RECEIVABLE,
        idempotency_key="credit_note:1",
    )
    rows = {r.currency: (r.ledger_deferred, r.scheduled) for r in deferred_revenue_reconciliation()}
    assert rows == {"JPY": (D("1100"), D("1100")), "USD": (D("35.00"), D("35.00"))}


# --- credit lines: negative schedules -----------------------------------------------------------


def _credit_scheduled(
    source_id: str, amount: str, start: date = JAN_1, end: date = date(2026, 2, 1)
) -> RecognitionSchedule:
    """A credit line (negative `amount`) taken out of deferred revenue and scheduled, as
    billing does at finalization."""
    ledger_post(
        idempotency_key=f"credit:{source_id}",
        effective_date=start,
        source_type="invoice",
        source_id=source_id,
        lines=[
            Posting.debit(A.DEFERRED_REVENUE, "USD", -D(amount)),
            Posting.credit(A.ACCOUNTS_RECEIVABLE, "USD", -D(amount)),
        ],
    )
    return recognition_schedule_create(
        source_id=source_id, currency="USD", amount=D(amount), service_start=start, service_end=end
    )


def test_a_credit_line_gives_revenue_back_day_by_day(balance: Callable[..., Decimal]) -> None:
    _scheduled("1", "30.00", end=date(2026, 1, 4))
    _credit_scheduled("2", "-10.00", end=date(2026, 1, 4))

    recognition_run(day=date(2026, 1, 3))

    # Each day nets 10 earned and 3.33 (then 3.34, 3.33) given back, in one entry.
    assert [
        lines_of(entry)
        for entry in JournalEntry.objects.filter(source_type="recognition").order_by("id")
    ] == [
        [
            ("debit", A.DEFERRED_REVENUE, D("6.6700")),
            ("credit", A.SUBSCRIPTION_REVENUE, D("6.6700")),
        ],
        [
            ("debit", A.DEFERRED_REVENUE, D("6.6600")),
            ("credit", A.SUBSCRIPTION_REVENUE, D("6.6600")),
        ],
        [
            ("debit", A.DEFERRED_REVENUE, D("6.6700")),
            ("credit", A.SUBSCRIPTION_REVENUE, D("6.6700")),
        ],
    ]
    assert balance(A.SUBSCRIPTION_REVENUE) == D("20.00")
    assert balance(A.DEFERRED_REVENUE) == D("0")
    credit = RecognitionSchedule.objects.get(source_id="2")
    assert (credit.recognized_amount, credit.recognized_through) == (D("-10.00"), date(2026, 1, 3))


def test_a_day_that_gives_back_more_than_it_earns_credits_deferred_revenue(
    balance: Callable[..., Decimal],
) -> None:
    _credit_scheduled("1", "-31.00")

    recognition_run(day=JAN_1)

    (entry,) = JournalEntry.objects.filter(source_type="recognition")
    assert lines_of(entry) == [
        ("debit", A.SUBSCRIPTION_REVENUE, D("1.0000")),
        ("credit", A.DEFERRED_REVENUE, D("1.0000")),
    ]
    # Alone, the credit's 30 still to give back are a debit balance in deferred revenue.
    assert balance(A.DEFERRED_REVENUE) == D("-30.00")
    assert deferred_revenue_reconciliation()[0].difference == 0


def test_a_credit_line_is_taken_back_by_a_negative_reduction(
    balance: Callable[..., Decimal],
) -> None:
    schedule = _credit_scheduled("1", "-31.00")
    recognition_run(day=date(2026, 1, 10))

    with pytest.raises(ValidationError) as refused:
        recognition_reduce(
            schedule=schedule,
            amount=D("31.00"),
            effective_date=date(2026, 1, 11),
            counterparty=A.ACCOUNTS_RECEIVABLE,
            idempotency_key="void:1",
        )
    assert refused.value.param == "amount"

    reduction = recognition_reduce(
        schedule=schedule,
        amount=D("-31.00"),
        effective_date=date(2026, 1, 11),
        counterparty=A.ACCOUNTS_RECEIVABLE,
        idempotency_key="void:1",
    )

    # The ten days given back go to refunds and credits (the other way), the rest back into
    # deferred revenue, against the receivable.
    assert (reduction.recognized_share, reduction.deferred_share) == (D("-10.00"), D("-21.00"))
    assert lines_of(reduction.entry) == [
        ("credit", A.REFUNDS_AND_CREDITS, D("10.0000")),
        ("credit", A.DEFERRED_REVENUE, D("21.0000")),
        ("debit", A.ACCOUNTS_RECEIVABLE, D("31.0000")),
    ]
    assert balance(A.DEFERRED_REVENUE) == D("0")
    assert recognition_run(day=date(2026, 1, 31)).entries == 0
