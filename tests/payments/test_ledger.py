"""Every billing flow booked in the ledger: exact balances, entries that balance, and the
reconciliation of the ledger with invoices, payments and balances (and its command)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from billing.ledger.models import AccountCode as A
from billing.ledger.models import JournalEntry, RecognitionSchedule
from billing.ledger.reports import ledger_check
from billing.models import Invoice, Payment, PaymentMethod
from billing.selectors import ledger_reconciliation, receivables_aging
from billing.services import (
    credit_note_create,
    customer_balance_adjust,
    invoice_mark_uncollectible,
    invoice_void,
    payment_record_offline,
    refund_create,
)
from catalog.services import tax_rate_create
from customers.models import Customer

from .conftest import STAFF, VISA, line

pytestmark = pytest.mark.django_db

D = Decimal
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]
Balance = Callable[..., Decimal]


@pytest.fixture
def californian(make_customer: Callable[..., Customer], clock: Any) -> Customer:
    tax_rate_create(name="CA", country="US", region="CA", percentage="7.25", actor=STAFF)
    return make_customer(country="US", region="CA", postal_code="94103", autocharge=False)


def _service(unit: str = "100.00") -> Any:
    return line(
        "Quarterly plan", unit, period_start=date(2026, 1, 15), period_end=date(2026, 4, 15)
    )


def _one_off(unit: str = "20.00") -> Any:
    return line("Setup", unit, kind="one_off")


def _consistent() -> None:
    assert ledger_check().problems == []
    assert ledger_reconciliation().mismatches == []


def test_a_finalized_invoice_defers_scheduled_lines_and_separates_tax(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(californian, _service("100.00"), _one_off("20.00"))

    # 100.00 + 7.25 tax and 20.00 + 1.45 tax
    assert invoice.total == D("128.70")
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("128.70")
    assert balance(A.DEFERRED_REVENUE) == D("100.00")
    assert balance(A.SUBSCRIPTION_REVENUE) == D("20.00")
    assert balance(A.TAX_PAYABLE) == D("8.70")
    schedule = RecognitionSchedule.objects.get()
    assert (schedule.source_id, schedule.amount, schedule.service_start, schedule.service_end) == (
        str(invoice.lines.get(description="Quarterly plan").pk),
        D("100.00"),
        date(2026, 1, 15),
        date(2026, 4, 15),
    )
    assert JournalEntry.objects.get().idempotency_key == f"invoice:{invoice.pk}:finalized"
    _consistent()


def test_a_payment_moves_the_receivable_to_cash(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(californian, _service("100.00"))
    payment = payment_record_offline(
        invoice=invoice,
        amount=D("50.00"),
        method="bank_transfer",
        reference="",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    assert balance(A.CASH) == D("50.00")
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("57.25")
    entry = JournalEntry.objects.get(idempotency_key=f"payment:{payment.pk}")
    assert entry.source_type == "payment"
    _consistent()


def test_an_inclusive_tax_is_taken_out_of_the_revenue(
    make_customer: Callable[..., Customer], bill: Bill, balance: Balance
) -> None:
    tax_rate_create(name="VAT", country="GB", percentage="20", inclusive=True, actor=STAFF)
    briton = make_customer(currency="GBP", country="GB", autocharge=False)

    bill(briton, _service("120.00"))

    assert balance(A.ACCOUNTS_RECEIVABLE, briton, currency="GBP") == D("120.00")
    assert balance(A.DEFERRED_REVENUE, currency="GBP") == D("100.00")
    assert balance(A.TAX_PAYABLE, currency="GBP") == D("20.00")
    assert RecognitionSchedule.objects.get().amount == D("100.00")
    _consistent()


def test_customer_credit_applied_at_finalization(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=D("30.00"), kind="adjustment", actor=STAFF
    )
    assert balance(A.CUSTOMER_CREDIT, californian) == D("30.00")
    assert balance(A.REFUNDS_AND_CREDITS) == D("30.00")

    invoice = bill(californian, _one_off("20.00"))

    assert invoice.credit_applied == D("21.45")
    assert invoice.status == "paid"
    assert balance(A.CUSTOMER_CREDIT, californian) == D("8.55")
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("0")
    _consistent()


def test_a_negative_invoice_is_credited_to_the_balance(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(
        californian,
        line("Unused time", "40.00", kind="proration_credit"),
        line("New plan", "10.00", kind="proration_charge"),
    )

    assert invoice.total == D("-32.17")  # -42.90 + 10.73
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("0")
    assert balance(A.CUSTOMER_CREDIT, californian) == D("32.17")
    assert balance(A.REFUNDS_AND_CREDITS) == D("40.00")
    assert balance(A.SUBSCRIPTION_REVENUE) == D("10.00")
    assert balance(A.TAX_PAYABLE) == D("-2.17")
    _consistent()


def test_a_credit_note_reduces_the_schedule_and_the_receivable(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(californian, _service("100.00"))

    credit_note_create(
        invoice=invoice,
        actor=STAFF,
        outcome="reduce_amount_due",
        lines=[(invoice.lines.get(), D("40.00"))],
    )

    invoice.refresh_from_db()
    assert invoice.amount_due == D("64.35")  # 107.25 - 42.90
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("64.35")
    assert balance(A.DEFERRED_REVENUE) == D("60.00")
    assert balance(A.TAX_PAYABLE) == D("4.35")
    assert RecognitionSchedule.objects.get().reduced_amount == D("40.00")
    _consistent()


def test_a_credit_note_to_the_balance_books_customer_credit(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(californian, _one_off("20.00"))

    credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")

    assert balance(A.CUSTOMER_CREDIT, californian) == D("21.45")
    assert balance(A.REFUNDS_AND_CREDITS) == D("20.00")
    assert balance(A.TAX_PAYABLE) == D("0")
    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("21.45")
    _consistent()


def test_a_refund_reverses_deferred_revenue_and_pays_out_cash(
    customer: Customer, save_card: SaveCard, bill: Bill, balance: Balance
) -> None:
    save_card(customer, VISA)
    bill(customer, _service("90.00"))
    payment = Payment.objects.get()

    refund_create(payment=payment, amount=D("30.00"), actor=STAFF)

    assert balance(A.CASH) == D("60.00")
    assert balance(A.DEFERRED_REVENUE) == D("60.00")
    assert balance(A.REFUNDS_AND_CREDITS) == D("0")
    assert RecognitionSchedule.objects.get().reduced_amount == D("30.00")
    _consistent()


def test_an_uncollectible_invoice_is_written_off(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    invoice = bill(californian, _one_off("20.00"))

    invoice_mark_uncollectible(invoice=invoice, actor=STAFF)

    assert balance(A.ACCOUNTS_RECEIVABLE, californian) == D("0")
    assert balance(A.BAD_DEBT) == D("21.45")
    assert JournalEntry.objects.filter(idempotency_key=f"invoice:{invoice.pk}:write_off").exists()
    _consistent()


def test_a_voided_invoice_leaves_nothing_in_the_books(
    californian: Customer, bill: Bill, balance: Balance
) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=D("5.00"), kind="adjustment", actor=STAFF
    )
    invoice = bill(californian, _service("100.00"), _one_off("20.00"))

    invoice_void(invoice=invoice, actor=STAFF)

    for code in (A.ACCOUNTS_RECEIVABLE, A.DEFERRED_REVENUE, A.TAX_PAYABLE):
        assert balance(code, californian if code == A.ACCOUNTS_RECEIVABLE else None) == D("0")
    assert balance(A.SUBSCRIPTION_REVENUE) == D("0")
    assert balance(A.CUSTOMER_CREDIT, californian) == D("5.00")
    assert RecognitionSchedule.objects.get().effective_amount == D("0")
    _consistent()


def test_a_balance_taken_back_by_hand_is_booked(californian: Customer, balance: Balance) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=D("10.00"), kind="adjustment", actor=STAFF
    )
    customer_balance_adjust(
        customer=californian, currency="USD", amount=D("-4.00"), kind="adjustment", actor=STAFF
    )

    assert balance(A.CUSTOMER_CREDIT, californian) == D("6.00")
    assert balance(A.REFUNDS_AND_CREDITS) == D("6.00")
    _consistent()


# --- receivables aging ----------------------------------------------------------------------------


def test_receivables_aging_puts_open_invoices_in_buckets_by_days_past_due(
    californian: Customer, bill: Bill, clock: Any
) -> None:
    from datetime import UTC, datetime

    amounts = {date(2025, 9, 1): "5.00", date(2025, 11, 1): "6.00", date(2026, 1, 15): "7.00"}
    for issued, amount in amounts.items():
        clock(datetime(issued.year, issued.month, issued.day, 12, tzinfo=UTC))
        bill(californian, _one_off(amount))
    clock(datetime(2026, 1, 15, 12, tzinfo=UTC))

    (row,) = receivables_aging(as_of=date(2026, 1, 15))

    # due on issue: Sep 1 is 136 days late, Nov 1 75 days, Jan 15 due today
    assert (row.currency, row.current, row.days_1_30, row.days_61_90, row.days_over_90) == (
        "USD",
        D("7.51"),
        D("0"),
        D("6.44"),
        D("5.36"),
    )
    assert (row.total, row.invoices) == (D("19.31"), 3)


# --- the reconciliation command -------------------------------------------------------------------


def _reconcile_exit_code() -> tuple[int, str]:
    """The command's exit code (what `manage.py` exits with: a CommandError's returncode)
    and its output."""
    out, err = StringIO(), StringIO()
    try:
        call_command("ledger_reconcile", stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, err.getvalue()
    return 0, out.getvalue()


def test_the_reconciliation_command_exits_0_when_the_books_agree_and_1_when_not(
    californian: Customer, bill: Bill
) -> None:
    invoice = bill(californian, _service("100.00"))
    payment_record_offline(
        invoice=invoice,
        amount=D("7.25"),
        method="cheque",
        reference="",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )
    code, out = _reconcile_exit_code()
    assert (code, "The ledger reconciles" in out) == (0, True)

    # Someone changes what is due behind the services' back.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_invoice SET amount_due = amount_due - 1 WHERE id = %s", [invoice.pk]
        )

    code, err = _reconcile_exit_code()
    assert code == 1
    assert err == (
        f"receivable USD customer:{californian.pk}: ledger 100.0000, expected 99.0000 "
        "(difference 1.0000)\n"
    )
    mismatch = ledger_reconciliation().mismatches
    assert [(m.check, m.party, m.difference) for m in mismatch] == [
        ("receivable", f"customer:{californian.pk}", D("1"))
    ]
